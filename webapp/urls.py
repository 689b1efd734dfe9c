from django.contrib import admin
from django.urls import include, path

from webapp import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("datasets/", include("datasets_app.urls")),
    path("jobs/", include("jobs.urls")),
    path("train/", include("training_app.urls")),
    path("merge/", include("models_app.merging.urls")),
    path("export/", include("models_app.exporting.urls")),
    path("models/", include("models_app.urls")),
    path("evaluations/", include("evals_app.urls")),
    path("api/", include("datasets_app.api_urls")),
    path("api/", include("jobs.api_urls")),
    # OpenAI-compatible: files and fine-tuning jobs.
    path("v1/", include("training_app.openai_urls")),
    # OpenAI-compatible: the gateway to deployed models.
    path("v1/", include("models_app.gateway.urls")),
]

from django.urls import path

from training_app import views

urlpatterns = [
    path("new/<int:version_id>/", views.training_new, name="training_new"),
    path("new/<int:version_id>/import/", views.training_import, name="training_import"),
    path("estimate/", views.training_estimate, name="training_estimate"),
    path("<int:job_id>/resume/<int:step>/", views.training_resume_view, name="training_resume"),
    path("<int:job_id>/retry/", views.training_retry_view, name="training_retry"),
    path("<int:job_id>/rehearsal/", views.training_rehearsal_view, name="training_rehearsal"),
    path("<int:job_id>/sweep/resume/", views.sweep_resume_view, name="sweep_resume"),
    path("<int:job_id>/recipe.yaml", views.training_recipe_yaml, name="training_recipe_yaml"),
    path(
        "<int:job_id>/checkpoints/<int:step>.zip",
        views.training_checkpoint_download,
        name="training_checkpoint",
    ),
    path("<int:job_id>/adapter.zip", views.training_adapter_download, name="training_adapter"),
]

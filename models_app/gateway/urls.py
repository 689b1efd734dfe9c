from django.urls import path

from models_app.gateway import views

urlpatterns = [
    path("models", views.model_list, name="gateway_models"),
    path("models/<path:model_id>", views.model_detail, name="gateway_model_detail"),
    path("chat/completions", views.chat_completions, name="gateway_chat_completions"),
    path("completions", views.completions, name="gateway_completions"),
]

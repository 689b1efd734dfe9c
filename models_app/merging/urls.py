from django.urls import path

from models_app.merging import views

urlpatterns = [
    path("adapters/<int:adapter_id>/", views.merge_view, name="merge_adapter"),
    path("models/<int:model_id>/download.tar", views.merged_model_download, name="merged_model_download"),
]

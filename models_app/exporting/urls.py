from django.urls import path

from models_app.exporting import views

urlpatterns = [
    path("adapters/<int:adapter_id>/gguf/", views.gguf_export_view, name="gguf_export"),
    path("jobs/<int:job_id>/files/<str:name>", views.gguf_download, name="gguf_download"),
]

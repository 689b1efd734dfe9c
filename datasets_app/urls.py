from django.urls import path

from datasets_app import views

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("upload/", views.dataset_upload_view, name="dataset_upload"),
    path("<int:dataset_id>/", views.dataset_detail, name="dataset_detail"),
    path("files/<int:file_id>/", views.dataset_file_detail, name="dataset_file_detail"),
    path("files/<int:file_id>/mapping/", views.dataset_file_remap, name="dataset_file_remap"),
    path("files/<int:file_id>/continue/", views.dataset_file_continue, name="dataset_file_continue"),
    path("files/<int:file_id>/errors.jsonl", views.dataset_file_errors, name="dataset_file_errors"),
    path("files/<int:file_id>/original", views.dataset_file_original, name="dataset_file_original"),
    path("versions/<int:version_id>/", views.dataset_version_detail, name="dataset_version_detail"),
    path("versions/<int:version_id>/clean/", views.dataset_version_clean, name="dataset_version_clean"),
    path(
        "versions/<int:version_id>/download/<str:part>.jsonl",
        views.dataset_version_download,
        name="dataset_version_download",
    ),
]

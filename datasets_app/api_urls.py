from django.urls import path

from datasets_app import api

urlpatterns = [
    path("datasets/", api.api_dataset_list, name="api_dataset_list"),
    path("datasets/upload/", api.api_dataset_upload, name="api_dataset_upload"),
    path("datasets/<int:dataset_id>/", api.api_dataset_detail, name="api_dataset_detail"),
    path("dataset-files/<int:file_id>/", api.api_dataset_file_detail, name="api_dataset_file_detail"),
    path(
        "dataset-versions/<int:version_id>/",
        api.api_dataset_version_detail,
        name="api_dataset_version_detail",
    ),
]

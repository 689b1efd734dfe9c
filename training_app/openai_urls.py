"""OpenAI's files and fine-tuning routes, included under /v1/ (the gateway adds models and completions)."""

from django.urls import path

from datasets_app import openai_files
from training_app import openai_api

urlpatterns = [
    path("files", openai_files.files, name="openai_files"),
    path("files/<str:file_id>", openai_files.file_detail, name="openai_file_detail"),
    path("fine_tuning/jobs", openai_api.fine_tuning_jobs, name="openai_fine_tuning_jobs"),
    path("fine_tuning/jobs/<str:job_id>", openai_api.fine_tuning_job_detail, name="openai_fine_tuning_job"),
    path(
        "fine_tuning/jobs/<str:job_id>/cancel",
        openai_api.fine_tuning_job_cancel,
        name="openai_fine_tuning_job_cancel",
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/events",
        openai_api.fine_tuning_job_events,
        name="openai_fine_tuning_job_events",
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/checkpoints",
        openai_api.fine_tuning_job_checkpoints,
        name="openai_fine_tuning_job_checkpoints",
    ),
]

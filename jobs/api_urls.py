from django.urls import path

from jobs import views

urlpatterns = [
    path("jobs/<int:job_id>/", views.api_job_detail, name="api_job_detail"),
    path("jobs/<int:job_id>/events/", views.api_job_events, name="api_job_events"),
]

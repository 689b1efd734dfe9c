from django.urls import path

from jobs import views

urlpatterns = [
    path("", views.job_list, name="job_list"),
    path("gpus/", views.gpu_list, name="gpu_list"),
    path("<int:job_id>/", views.job_detail, name="job_detail"),
    path("<int:job_id>/cancel/", views.job_cancel_view, name="job_cancel"),
    path("<int:job_id>/events/", views.job_events, name="job_events"),
    path("<int:job_id>/log.txt", views.job_log, name="job_log"),
]

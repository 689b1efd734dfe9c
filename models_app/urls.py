from django.urls import path

from models_app import endpoint_views, views

urlpatterns = [
    path("", views.model_list, name="model_list"),
    path("deploy", endpoint_views.deploy, name="endpoint_deploy"),
    path("endpoints/", endpoint_views.endpoint_list, name="endpoint_list"),
    path("endpoints/<int:endpoint_id>/", endpoint_views.endpoint_detail, name="endpoint_detail"),
    path("endpoints/<int:endpoint_id>/status", endpoint_views.endpoint_status, name="endpoint_status"),
    path("endpoints/<int:endpoint_id>/stop", endpoint_views.endpoint_stop, name="endpoint_stop"),
    path("endpoints/<int:endpoint_id>/log.txt", endpoint_views.endpoint_log, name="endpoint_log"),
    path("endpoints/<int:endpoint_id>/playground", endpoint_views.playground, name="endpoint_playground"),
    path("endpoints/<int:endpoint_id>/chat", endpoint_views.playground_chat, name="endpoint_chat"),
]

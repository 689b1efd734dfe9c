from django.urls import path

from models_app import views

urlpatterns = [
    path("", views.model_list, name="model_list"),
]

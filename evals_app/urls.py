from django.urls import path

from evals_app import views

urlpatterns = [
    path("", views.evaluation_list, name="evaluation_list"),
    path("new", views.evaluation_new, name="evaluation_new"),
    path("compare", views.run_compare, name="run_compare"),
    path("<int:evaluation_id>/", views.evaluation_detail, name="evaluation_detail"),
    path("<int:evaluation_id>/examples", views.evaluation_examples, name="evaluation_examples"),
    path("<int:evaluation_id>/export.<str:fmt>", views.evaluation_export, name="evaluation_export"),
]

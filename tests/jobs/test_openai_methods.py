"""How the OpenAI API lists a job started in the web page by a method OpenAI does not have."""

from __future__ import annotations

from training_app.ml.recipe import Recipe
from training_app.openai_services import method_of


def test_a_grpo_job_is_listed_under_its_own_method_with_its_beta():
    method = method_of(Recipe(objective="grpo", beta=0.05, num_epochs=1, grad_accum=8))
    assert method["type"] == "grpo"
    assert method["grpo"]["hyperparameters"]["beta"] == 0.05
    assert method["grpo"]["hyperparameters"]["n_epochs"] == 1


def test_a_supervised_job_is_listed_as_supervised_without_a_beta():
    method = method_of(Recipe())
    assert method["type"] == "supervised" and "beta" not in method["supervised"]["hyperparameters"]

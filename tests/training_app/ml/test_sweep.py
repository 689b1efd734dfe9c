"""The settings sweep on the tiny model: trials drawn by Optuna, pruning, the winner, stop and resume."""

from __future__ import annotations

from pathlib import Path

from tests.training_app.ml.conftest import TINY_RECIPE, recorder
from training_app.ml.recipe import Recipe
from training_app.ml.sweep import TrialOutcome, best_trial, run_sweep
from training_app.ml.sweep_space import search_space

SWEEP_RECIPE = TINY_RECIPE.replace(max_steps=6, eval_steps=2, save_steps=2)


def test_the_search_space_is_around_the_starting_recipe():
    space = search_space(Recipe(learning_rate=5e-4, num_epochs=10))
    assert space["learning_rate"] == (2.5e-4, 5e-4, 1e-3)
    assert space["num_epochs"] == (5, 10, 15)
    assert space["lora_r"] == (8, 16, 32)


def test_the_winner_answers_most_held_out_questions_then_has_the_lowest_loss():
    trials = [
        TrialOutcome(0, {}, "complete", eval_loss=0.5, right=3, total=10, adapter_dir="/a"),
        TrialOutcome(1, {}, "complete", eval_loss=0.9, right=8, total=10, adapter_dir="/b"),
        TrialOutcome(2, {}, "complete", eval_loss=0.7, right=8, total=10, adapter_dir="/c"),
        TrialOutcome(3, {}, "pruned", eval_loss=0.1),
    ]
    assert best_trial(trials).number == 2
    assert best_trial([trials[3]]) is None


def test_it_runs_trials_keeps_the_winners_adapter_and_resumes_after_a_stop(
    tiny_model_dir, canonical_files, tmp_path
):
    train_path, validation_path = canonical_files
    events: list[dict] = []
    steps = []

    def stop_in_second_trial() -> bool:
        steps.append(1)
        return any(e["type"] == "trial" and e["number"] == 1 for e in events) and len(steps) > 8

    common = dict(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=validation_path,
        output_dir=tmp_path,
        base_recipe=SWEEP_RECIPE,
        trials=3,
        on_event=recorder(events),
    )
    stopped = run_sweep(**common, should_stop=stop_in_second_trial)
    assert stopped.stopped and stopped.winner is None
    assert [t.state for t in stopped.trials] == ["complete", "running"]

    resumed = run_sweep(**common)
    states = [trial.state for trial in resumed.trials]
    assert states[:2] == ["complete", "fail"]  # the interrupted trial is not continued
    assert len([s for s in states if s in ("complete", "pruned")]) == 3
    winner = resumed.winner
    assert winner.state == "complete" and Path(winner.adapter_dir, "adapter_model.safetensors").is_file()
    assert winner.total == 4 and winner.eval_loss is not None
    assert set(winner.params) == {"learning_rate", "num_epochs", "lora_r"}
    # Every metric says which trial it belongs to, for the overlay of the trials' curves.
    metrics = [event for event in events if event["type"] == "metrics"]
    assert {event["trial"] for event in metrics} == {t.number for t in resumed.trials}
    finished = [e for e in events if e["type"] == "trial" and e["state"] != "running"]
    assert [e["number"] for e in finished] == [0, *[t.number for t in resumed.trials[2:]]]

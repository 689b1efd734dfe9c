"""DPO plumbing, tiny model: pairs in, reward events out, one adapter saved, from a base or an adapter.

Whether DPO teaches the demo model to prefer the chosen answers is checked end to end on the worker
(tests/jobs/test_preference_training_worker.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from tests.training_app.ml.conftest import conversation, recorder, write_jsonl
from training_app.ml.errors import TrainingDataError
from training_app.ml.preference import preference_pair
from training_app.ml.recipe import Recipe
from training_app.ml.train import train

DPO_RECIPE = Recipe(
    objective="dpo",
    lora_r=8,
    lora_alpha=16,
    target_modules="all_linear",
    batch_size=2,
    grad_accum=2,
    max_steps=6,
    eval_steps=3,
    save_steps=3,
    max_seq_len=128,
    learning_rate=5e-4,
    warmup_ratio=0.0,
)


def pair(index: int) -> dict:
    """A sum answered right (chosen) or brushed off (rejected)."""
    return {
        "messages": [
            {"role": "user", "content": f"What is {index} plus {index}?"},
            {"role": "assistant", "content": f"{index} plus {index} is {2 * index}."},
        ],
        "rejected": [{"role": "assistant", "content": "Figure it out yourself."}],
        "source_line": index + 1,
    }


@pytest.fixture(scope="module")
def dpo_run(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dpo")
    rated = {**conversation(99), "label": True, "source_line": 17}  # a KTO row: not a pair, left out
    train_path = write_jsonl(folder / "train.jsonl", [pair(index) for index in range(16)] + [rated])
    validation_path = write_jsonl(folder / "validation.jsonl", [pair(index) for index in range(40, 48)])
    events: list[dict] = []
    result = train(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=validation_path,
        output_dir=folder / "out",
        recipe=DPO_RECIPE,
        on_event=recorder(events),
    )
    return result, events


def test_every_step_and_evaluation_reports_the_rewards_the_charts_draw(dpo_run):
    result, events = dpo_run
    metrics = [event for event in events if event["type"] == "metrics"]
    evaluations = [event for event in events if event["type"] == "eval"]
    assert [event["step"] for event in metrics] == list(range(1, 7))
    assert [event["step"] for event in evaluations] == [3, 6]
    # At the first step the model is its own reference: no pair is preferred yet.
    assert metrics[0]["preference_accuracy"] == 0 and metrics[0]["reward_margin"] == 0
    for event in metrics[1:] + evaluations:
        assert event["reward_margin"] == pytest.approx(
            event["reward_chosen"] - event["reward_rejected"], abs=1e-4
        )
        assert 0 <= event["preference_accuracy"] <= 1
    assert result.dropped_rows == 1 and result.verdict is None  # the rated (KTO) row is not a pair


def test_a_dpo_run_says_what_it_trains_and_saves_one_adapter(dpo_run):
    result, events = dpo_run
    logs = [event["message"] for event in events if event["type"] == "log"]
    assert any("by DPO (sigmoid loss, beta 0.1) from the base model" in message for message in logs)
    adapter = Path(result.adapter_dir)
    with safe_open(adapter / "adapter_model.safetensors", "pt") as weights:
        assert not any(".ref." in name for name in weights.keys())
    assert any(event["type"] == "samples" for event in events)  # answers shown as for supervised runs


def test_dpo_from_a_supervised_adapter_trains_that_adapter_against_a_frozen_copy(
    tiny_model_dir, trained_run, tmp_path
):
    train_path = write_jsonl(tmp_path / "train.jsonl", [pair(index) for index in range(4)])
    events: list[dict] = []
    result = train(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=None,
        output_dir=tmp_path / "out",
        recipe=DPO_RECIPE.replace(lora_r=4, lora_alpha=8, target_modules="attention", max_steps=2),
        on_event=recorder(events),
        start_adapter_dir=trained_run.result.adapter_dir,
    )
    logs = [event["message"] for event in events if event["type"] == "log"]
    assert any("on top of the supervised adapter" in message for message in logs)
    with (
        safe_open(Path(trained_run.result.adapter_dir) / "adapter_model.safetensors", "pt") as before,
        safe_open(Path(result.adapter_dir) / "adapter_model.safetensors", "pt") as after,
    ):
        assert sorted(before.keys()) == sorted(after.keys())  # the same adapter, no reference copy in it
        moved = [name for name in after.keys() if not before.get_tensor(name).equal(after.get_tensor(name))]
    assert moved


def test_a_file_without_pairs_is_refused_in_words(tiny_model_dir, tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", [conversation(index) for index in range(3)])
    with pytest.raises(TrainingDataError, match="holds no preference pairs"):
        train(
            base_model_dir=tiny_model_dir,
            train_path=train_path,
            validation_path=None,
            output_dir=tmp_path / "out",
            recipe=DPO_RECIPE,
            on_event=lambda event: None,
        )


def test_a_canonical_pair_splits_into_prompt_chosen_and_rejected():
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello.", "name": None},
        ],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    assert preference_pair(row) == {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    assert preference_pair({"messages": row["messages"], "label": True}) is None

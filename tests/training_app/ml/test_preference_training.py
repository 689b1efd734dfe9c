"""Preference plumbing, tiny model: pairs (or rated answers) in, reward events out, one adapter saved,
from a base or an adapter; DPO in depth, then ORPO, SimPO and KTO.

Whether DPO teaches the demo model to prefer the chosen answers is checked end to end on the worker
(tests/jobs/test_preference_training_worker.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from tests.training_app.ml.conftest import conversation, recorder, train_recorded, write_jsonl
from training_app.ml.errors import TrainingDataError
from training_app.ml.preference import preference_pair, rated_answers
from training_app.ml.preference_trainers import kto_batch, kto_weights
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
    train_rows = [pair(index) for index in range(16)] + [rated]
    validation_rows = [pair(index) for index in range(40, 48)]
    return train_recorded(tiny_model_dir, folder, DPO_RECIPE, train_rows, validation_rows)


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
    said = "Training LoRA by DPO (sigmoid loss, beta 0.1) from the base model"  # "LoRA", as people write it
    assert any(said in message for message in logs)
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


def rated(index: int, good: bool) -> dict:
    """A rated answer (KTO's format): a right sum marked good, a brush-off marked bad."""
    answer = f"{index} plus {index} is {2 * index}." if good else "Figure it out yourself."
    return {
        "messages": [
            {"role": "user", "content": f"What is {index} plus {index}?"},
            {"role": "assistant", "content": answer},
        ],
        "label": good,
        "source_line": index + 1,
    }


@pytest.mark.parametrize(
    ("objective", "described"),
    [
        ("orpo", "by ORPO (lambda 0.1, no reference model) from the base model"),
        ("simpo", "by SimPO (beta 2, margin 1, no reference model) from the base model"),
        ("kto", "by KTO (beta 0.1) from the base model"),
    ],
)
def test_orpo_simpo_and_kto_train_and_report_their_rewards(objective, described, tiny_model_dir, tmp_path):
    rows = [pair(index) for index in range(6)]
    if objective == "kto":  # rated answers, and pairs (a good and a bad answer each)
        rows = [rated(index, good=index % 3 != 0) for index in range(10, 16)] + rows[:3]
    train_path = write_jsonl(tmp_path / "train.jsonl", rows)
    events: list[dict] = []
    recipe = DPO_RECIPE.replace(objective=objective, max_steps=2, eval_steps=2, save_steps=2)
    if objective == "simpo":
        recipe = recipe.replace(beta=2.0, simpo_gamma=1.0)
    result = train(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=write_jsonl(tmp_path / "validation.jsonl", [pair(index) for index in range(40, 42)]),
        output_dir=tmp_path / "out",
        recipe=recipe,
        on_event=recorder(events),
    )
    logs = [event["message"] for event in events if event["type"] == "log"]
    assert any(described in message for message in logs), logs
    metrics = [event for event in events if event["type"] == "metrics"]
    assert [event["step"] for event in metrics] == [1, 2]
    for event in metrics:
        assert event["reward_margin"] == pytest.approx(
            event["reward_chosen"] - event["reward_rejected"], abs=1e-4
        )
    if objective == "kto":
        # 6 rated answers (4 good, 2 bad) and 3 pairs (3 good, 3 bad): bad answers weigh 7 / 5.
        assert any("7 good and 5 bad answers: bad answers weigh 1.40" in message for message in logs)
    else:
        assert all(0 <= event["preference_accuracy"] <= 1 for event in metrics)
    with safe_open(Path(result.adapter_dir) / "adapter_model.safetensors", "pt") as weights:
        assert weights.keys() and not any(".ref." in name for name in weights.keys())
    assert result.verdict is None


def test_kto_reads_a_pair_as_one_good_and_one_bad_answer_and_a_rated_row_as_itself():
    prompt = [{"role": "user", "content": "What is 1 plus 1?"}]
    assert rated_answers(pair(1)) == [
        {"prompt": prompt, "completion": [{"role": "assistant", "content": "1 plus 1 is 2."}], "label": True},
        {
            "prompt": prompt,
            "completion": [{"role": "assistant", "content": "Figure it out yourself."}],
            "label": False,
        },
    ]
    assert [answer["label"] for answer in rated_answers(rated(1, good=False))] == [False]
    assert rated_answers(conversation(1)) == []  # a plain conversation rates nothing


def test_kto_balances_unequal_counts_and_takes_two_answers_per_device_batch():
    assert kto_weights([True] * 6 + [False] * 2) == (1.0, 3.0)
    assert kto_weights([True, False]) == (1.0, 1.0)
    assert kto_weights([True, True]) == (1.0, 1.0)  # nothing to balance
    arguments = {
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "train_sampling_strategy": "random",
    }
    assert kto_batch(arguments) == {
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "gradient_accumulation_steps": 4,  # still 8 answers per update
        "train_sampling_strategy": "sequential",
    }
    wide = {**arguments, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}
    assert kto_batch(wide)["gradient_accumulation_steps"] == 2

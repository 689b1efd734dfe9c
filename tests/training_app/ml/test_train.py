"""Training end to end on a tiny random model: events, adapter, stop, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training_app.ml.conftest import TINY_RECIPE, Run, conversation, recorder, write_jsonl
from training_app.ml import callbacks
from training_app.ml.errors import (
    TrainingDataError,
    TrainingDiverged,
    TrainingModelMissing,
    TrainingNotRunnable,
    TrainingOutOfMemory,
)
from training_app.ml.recipe import Recipe
from training_app.ml.train import train


def run_training(tiny_model_dir, canonical_files, output_dir, recipe=TINY_RECIPE, **kwargs) -> Run:
    events: list[dict] = []
    train_path, validation_path = canonical_files
    result = train(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=validation_path,
        output_dir=output_dir,
        recipe=recipe,
        on_event=recorder(events),
        **kwargs,
    )
    return Run(result, events, Path(output_dir))


def test_it_reports_loss_for_every_step(trained_run):
    metrics = trained_run.of_type("metrics")
    assert [event["step"] for event in metrics] == [1, 2, 3, 4]
    assert all(event["max_steps"] == 4 for event in metrics)
    assert all(isinstance(event["loss"], float) and event["loss"] > 0 for event in metrics)
    assert all(event["tokens_per_second"] > 0 for event in metrics)
    assert all(0 <= event["token_accuracy"] <= 1 for event in metrics)
    assert metrics[0]["gpu_memory_mb"] is None  # no GPU here
    # An evaluated step's metrics carry that evaluation: the chart's validation point sits where it was
    # measured, the last one included.
    evaluations = {event["step"]: event["eval_loss"] for event in trained_run.of_type("eval")}
    assert [event["eval_loss"] for event in metrics] == [None, evaluations[2], evaluations[2], evaluations[4]]
    assert [event["step"] for event in trained_run.of_type("progress")] == [0, 1, 2, 3, 4]


def test_it_evaluates_and_checkpoints_on_schedule(trained_run):
    evaluations = trained_run.of_type("eval")
    assert [event["step"] for event in evaluations] == [2, 4]
    assert all(event["eval_loss"] > 0 for event in evaluations)
    checkpoints = trained_run.of_type("checkpoint")
    assert [event["step"] for event in checkpoints] == [2, 4]
    assert all(Path(event["path"], "adapter_model.safetensors").is_file() for event in checkpoints)
    assert trained_run.result.checkpoints == [{"step": e["step"], "path": e["path"]} for e in checkpoints]


def test_it_saves_the_adapter_with_the_recipes_rank(trained_run):
    result = trained_run.result
    adapter_dir = Path(result.adapter_dir)
    assert adapter_dir == trained_run.output_dir / "adapter"
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (TINY_RECIPE.lora_r, TINY_RECIPE.lora_alpha)
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert (adapter_dir / "tokenizer_config.json").is_file()
    assert (result.final_step, result.stopped, result.dropped_rows) == (4, False, 0)
    assert result.train_loss > 0
    assert Recipe.from_yaml((trained_run.output_dir / "recipe.yaml").read_text()) == TINY_RECIPE


def test_it_stops_with_a_checkpoint_and_resumes_from_it(tiny_model_dir, canonical_files, tmp_path):
    steps_done = []

    def should_stop() -> bool:
        steps_done.append(1)
        return len(steps_done) >= 2

    recipe = TINY_RECIPE.replace(save_steps=100, eval_steps=100)
    stopped = run_training(tiny_model_dir, canonical_files, tmp_path, recipe, should_stop=should_stop)
    assert stopped.result.stopped and stopped.result.final_step == 2
    assert stopped.result.checkpoints == [{"step": 2, "path": str(tmp_path / "checkpoints" / "checkpoint-2")}]
    assert [event["step"] for event in stopped.of_type("metrics")] == [1, 2]

    resumed = run_training(
        tiny_model_dir,
        canonical_files,
        tmp_path,
        recipe,
        resume_from_checkpoint=tmp_path / "checkpoints/checkpoint-2",
    )
    assert [event["step"] for event in resumed.of_type("progress")] == [2, 3, 4]
    assert [event["step"] for event in resumed.of_type("metrics")] == [3, 4]
    assert (resumed.result.final_step, resumed.result.stopped) == (4, False)
    assert [checkpoint["step"] for checkpoint in resumed.result.checkpoints] == [4]


def test_it_stops_a_diverging_run_with_the_guides_advice(
    tiny_model_dir, canonical_files, tmp_path, monkeypatch
):
    # A random model's loss barely moves in four steps, so the detector is made touchy instead:
    # every log counts as rising and two in a row are enough.
    detector = callbacks.DivergenceDetector
    monkeypatch.setattr(
        callbacks,
        "DivergenceDetector",
        lambda **options: detector(factor=0.5, min_rise=-1e9, patience=2, **options),
    )
    with pytest.raises(TrainingDiverged) as caught:
        run_training(tiny_model_dir, canonical_files, tmp_path, TINY_RECIPE.replace(learning_rate=0.5))
    error = caught.value
    assert error.step == 2 and "the loss kept rising" in error.message
    assert "1e-5 and 5e-5" in error.hint and "warmup_ratio 0.1" in error.hint
    assert error.remedies == {"learning_rate": 2e-5, "warmup_ratio": 0.1}
    assert not (tmp_path / "adapter").exists()


def test_it_turns_running_out_of_gpu_memory_into_remedies(
    tiny_model_dir, canonical_files, tmp_path, monkeypatch
):
    import torch
    from trl import SFTTrainer

    def out_of_memory(self, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(SFTTrainer, "train", out_of_memory)
    with pytest.raises(TrainingOutOfMemory) as caught:
        run_training(
            tiny_model_dir, canonical_files, tmp_path, TINY_RECIPE.replace(max_seq_len=2048, batch_size=4)
        )
    assert caught.value.remedies == {
        "max_seq_len": 1024,
        "gradient_checkpointing": "on",
        "batch_size": 1,
        "grad_accum": 4,
    }
    assert caught.value.to_dict()["kind"] == "TrainingOutOfMemory"
    TINY_RECIPE.replace(**caught.value.remedies)  # the remedies make a valid recipe


def test_it_raises_a_data_error_when_nothing_can_be_learnt(tiny_model_dir, tmp_path):
    silent = conversation(1)
    silent["messages"] = silent["messages"][:2]  # no assistant reply
    train_path = write_jsonl(tmp_path / "train.jsonl", [silent])
    with pytest.raises(TrainingDataError, match="None of the 1 training conversations"):
        run_training(tiny_model_dir, (train_path, None), tmp_path / "out")


def test_it_says_when_the_model_folder_is_missing(canonical_files, tmp_path):
    with pytest.raises(TrainingModelMissing, match="is missing") as caught:
        run_training(tmp_path / "gone", canonical_files, tmp_path / "out")
    assert caught.value.hint


def test_it_names_the_layers_when_target_modules_do_not_exist(tiny_model_dir, canonical_files, tmp_path):
    with pytest.raises(TrainingNotRunnable) as caught:
        run_training(tiny_model_dir, canonical_files, tmp_path, TINY_RECIPE.replace(target_modules="wq,wk"))
    assert caught.value.message == "This model has no layers called wq, wk."
    assert "q_proj" in caught.value.hint and "down_proj" in caught.value.hint


def test_it_trains_ia3_adapters(tiny_model_dir, canonical_files, tmp_path):
    recipe = TINY_RECIPE.replace(method="ia3", target_modules="all_linear", max_steps=1)
    run = run_training(tiny_model_dir, (canonical_files[0], None), tmp_path, recipe)
    config = json.loads(Path(run.result.adapter_dir, "adapter_config.json").read_text())
    assert config["peft_type"] == "IA3" and config["feedforward_modules"] == ["down_proj"]
    assert run.of_type("eval") == []  # no validation file, no evaluation


def _answer_row(index: int, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Question {index}?"},
            {"role": "assistant", "content": answer},
        ],
        "source_line": index + 1,
    }


def test_it_stops_early_and_keeps_the_checkpoint_with_the_lowest_validation_loss(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    # Training teaches one answer, validation expects another: once the model has learned the shape
    # of an answer, every step towards the training answer makes the validation loss worse.
    train_path = write_jsonl(
        tmp_path / "train.jsonl", [_answer_row(i, "apple apple apple") for i in range(8)]
    )
    validation_path = write_jsonl(
        tmp_path / "validation.jsonl", [_answer_row(i, "zebra zebra zebra") for i in range(8, 12)]
    )
    recipe = TINY_RECIPE.replace(
        max_steps=40, eval_steps=2, save_steps=2, learning_rate=5e-3, early_stopping_patience=2
    )
    run = run_training(tiny_model_dir, (train_path, validation_path), tmp_path / "out", recipe)
    losses = {event["step"]: event["eval_loss"] for event in run.of_type("eval")}
    best = min(losses, key=losses.get)
    result = run.result
    assert result.early_stopped and result.final_step < 40
    # Stopped after `patience` evaluations without a new lowest loss.
    assert max(losses) == best + 2 * recipe.early_stopping_patience
    assert (result.best_step, result.best_eval_loss) == (best, pytest.approx(losses[best]))
    kept = load_file(Path(result.adapter_dir, "adapter_model.safetensors"))
    chosen = load_file(tmp_path / "out" / "checkpoints" / f"checkpoint-{best}" / "adapter_model.safetensors")
    last = load_file(
        tmp_path / "out" / "checkpoints" / f"checkpoint-{result.final_step}" / "adapter_model.safetensors"
    )
    assert kept.keys() == chosen.keys()
    assert all((kept[name] == chosen[name]).all() for name in kept)
    assert any((kept[name] != last[name]).any() for name in kept)
    logs = " ".join(event["message"] for event in run.of_type("log"))
    assert f"Stopped early at step {result.final_step} of 40" in logs
    assert f"Keeping the weights of step {best}" in logs


def test_it_checks_held_out_answers_against_the_base_model(trained_run):
    verdict = trained_run.result.verdict
    assert verdict["total"] == 4  # the validation rows
    assert [example["prompt"] for example in verdict["examples"]] == [
        f"What is {index} plus {index}?" for index in range(16, 20)
    ]
    assert all("answer" in example and "base_answer" in example for example in verdict["examples"])
    assert verdict["summary"].startswith(f"Answered {verdict['right']} of 4 held-out questions")
    assert trained_run.of_type("verdict")[0]["summary"] == verdict["summary"]
    progress = trained_run.of_type("verdict_progress")
    assert progress[-1] == {"type": "verdict_progress", "done": 8, "total": 8}

"""Divergence detection and the event callback, without a trainer."""

from __future__ import annotations

import math

from transformers import TrainerControl, TrainerState, TrainingArguments

from tests.training_app.ml.conftest import recorder
from training_app.ml.callbacks import DivergenceDetector, EventCallback


def feed(detector: DivergenceDetector, losses: list[float]) -> list[str | None]:
    return [detector.update(loss) for loss in losses]


def test_it_calls_a_nan_or_infinite_loss_divergence_at_once():
    assert DivergenceDetector().update(math.nan) == "the loss became NaN or infinite"
    assert DivergenceDetector().update(math.inf) == "the loss became NaN or infinite"


def test_it_leaves_a_falling_noisy_loss_alone():
    losses = [3.0 - 0.02 * step + (0.3 if step % 2 else -0.3) for step in range(100)]
    assert feed(DivergenceDetector(), losses) == [None] * 100


def test_it_leaves_a_loss_near_zero_alone():
    losses = [0.01, 0.02, 0.03, 0.04] * 20  # four times its lowest value, but a tiny wobble
    assert set(feed(DivergenceDetector(), losses)) == {None}


def test_it_calls_a_loss_that_keeps_rising_divergence():
    losses = [2.0] * 10 + [2.0 + 0.5 * step for step in range(1, 60)]
    verdicts = feed(DivergenceDetector(), losses)
    first = next(index for index, verdict in enumerate(verdicts) if verdict)
    assert verdicts[first].startswith("the loss kept rising")
    # Twenty logs above 1.5 times the lowest, after the moving average has climbed there.
    assert 30 <= first < 50


def test_it_stops_training_and_sends_json_safe_metrics_on_a_nan_loss():
    events: list[dict] = []
    callback = EventCallback(recorder(events), should_stop=lambda: False)
    state, control = TrainerState(global_step=3, max_steps=10, epoch=0.3), TrainerControl(should_save=True)
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to=[])
    callback.on_log(args, state, control, logs={"loss": math.nan, "learning_rate": 1e-4, "num_tokens": 90.0})
    assert callback.diverged == (3, "the loss became NaN or infinite")
    assert control.should_training_stop and not control.should_save
    (event,) = events
    assert event["type"] == "metrics" and event["loss"] is None and event["step"] == 3


def test_it_asks_for_a_checkpoint_when_told_to_stop():
    events: list[dict] = []
    callback = EventCallback(recorder(events), should_stop=lambda: True)
    state, control = TrainerState(global_step=2, max_steps=10), TrainerControl()
    callback.on_step_end(TrainingArguments(output_dir="unused", use_cpu=True, report_to=[]), state, control)
    assert callback.stopped and control.should_save and control.should_training_stop
    assert events == [{"type": "progress", "step": 2, "max_steps": 10}]


def test_an_evaluated_steps_metrics_carry_that_evaluation():
    """The trainer logs a step before evaluating it: the step's metrics wait for the evaluation, so the
    chart's validation point sits at the step it was measured (the run's last evaluation included)."""
    events: list[dict] = []
    callback = EventCallback(recorder(events), should_stop=lambda: False)
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to=[])
    logs = {"loss": 2.0, "rewards/chosen": 0.3, "rewards/rejected": 0.1, "rewards/accuracies": 1.0}
    state = TrainerState(global_step=2, max_steps=2)
    callback.on_log(args, state, TrainerControl(should_evaluate=True), logs=logs)
    assert events == []
    metrics = {"eval_loss": 1.5, "eval_rewards/chosen": 0.5, "eval_rewards/rejected": 0.2}
    callback.on_evaluate(args, state, TrainerControl(), metrics={**metrics, "eval_rewards/accuracies": 0.75})
    held, evaluation = events
    assert held["type"] == "metrics" and held["step"] == 2 and held["eval_loss"] == 1.5
    assert held["eval_preference_accuracy"] == 0.75 and round(held["eval_reward_margin"], 6) == 0.3
    assert evaluation["type"] == "eval" and evaluation["eval_loss"] == 1.5


def test_a_held_step_is_sent_even_if_its_evaluation_never_comes():
    events: list[dict] = []
    callback = EventCallback(recorder(events), should_stop=lambda: False)
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to=[])
    evaluating = TrainerControl(should_evaluate=True)
    callback.on_log(args, TrainerState(global_step=1), evaluating, logs={"loss": 2.0})
    callback.on_step_end(args, TrainerState(global_step=2, max_steps=4), TrainerControl())
    assert [(event["type"], event["step"]) for event in events] == [("metrics", 1), ("progress", 2)]
    assert events[0]["eval_loss"] is None and "eval_reward_margin" not in events[0]

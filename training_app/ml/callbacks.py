"""Turning the trainer's progress into events, honouring stop requests, spotting divergence.

Every event is a JSON-safe dict (NaN and infinity become ``None``), so the job
runner can store and broadcast it as it is. Shapes:

- ``{"type": "metrics", "step", "max_steps", "epoch", "loss", "eval_loss", "learning_rate",
  "grad_norm", "tokens_per_second", "token_accuracy", "gpu_memory_mb", "process_memory_mb"}``, one per logged
  step; ``eval_loss`` is the latest evaluation's, this step's included (``None`` before the first: a step
  that is evaluated sends its metrics after the evaluation, so a chart's validation point sits at the step
  it was measured and a run's last evaluation reaches it); a preference run's carry
  ``PREFERENCE_METRICS``' keys (the implicit rewards of the chosen and rejected answers, their margin, and
  the share of pairs where the chosen one scores higher) and ``eval_preference_accuracy`` and
  ``eval_reward_margin``, the latest evaluation's on the validation data; a GRPO run's carry
  ``REINFORCEMENT_METRICS``' (the answers' mean reward, share of right ones, length and KL) and
  ``eval_right_answers`` and ``eval_reward``;
- ``{"type": "progress", "step", "max_steps"}`` when training starts (``step`` is the
  checkpoint's on a resumed run) and after every optimizer step;
- ``{"type": "checkpoint", "step", "path"}`` once a checkpoint folder is written;
- ``{"type": "eval", "step", "eval_loss", "token_accuracy"}`` after each evaluation (a preference run's add
  ``preference_accuracy`` and ``reward_margin`` on the validation pairs, a GRPO run's its values on the
  validation questions);
- ``{"type": "log", "level", "message"}`` (sent by :mod:`training_app.ml.train`);
- ``{"type": "verdict_progress", "done", "total"}`` and ``{"type": "verdict", ...}`` (the held-out check
  after training, :mod:`training_app.ml.verdict`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

EventSink = Callable[[dict[str, Any]], None]
# trl's preference log keys (DPO, ORPO, SimPO, KTO), as the events name them. KTO logs no accuracy.
PREFERENCE_METRICS = {
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "rewards/accuracies": "preference_accuracy",
}


def preference_values(logs: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """The preference values of a trainer log (``prefix`` "eval_" for an evaluation's); empty for other
    runs. The margin is chosen minus rejected as the chart shows them: KTO's own margin averages only
    the batches that held both a good and a bad answer."""
    if not any(prefix + key in logs for key in PREFERENCE_METRICS):
        return {}
    values = {name: json_number(logs.get(prefix + key)) for key, name in PREFERENCE_METRICS.items()}
    chosen, rejected = values["reward_chosen"], values["reward_rejected"]
    values["reward_margin"] = chosen - rejected if chosen is not None and rejected is not None else None
    return values


# trl's GRPO log keys, as the events name them: the mean reward of the answers written, the share of right
# ones (training_app/ml/rewards.py), their mean length in tokens, and how far the model has moved (KL).
REINFORCEMENT_METRICS = {
    "reward": "reward",
    "right_answers": "right_answers",
    "completions/mean_length": "answer_tokens",
    "kl": "kl",
    # The share of questions whose answers all scored the same (all right or all wrong): GRPO learns nothing
    # from those.
    "frac_reward_zero_std": "nothing_to_learn",
}


def reinforcement_values(logs: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """A GRPO run's values of a trainer log (``prefix`` "eval_" for an evaluation's); empty for others."""
    if prefix + "reward" not in logs:
        return {}
    return {name: json_number(logs.get(prefix + key)) for key, name in REINFORCEMENT_METRICS.items()}


def json_number(value: Any) -> float | None:
    """A float JSON can carry: NaN, infinity and non-numbers become None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class DivergenceDetector:
    """Says when training has gone wrong: a NaN/infinite loss, or a loss that keeps rising.

    Single steps are noisy (batch 1), so "rising" is judged on an exponential
    moving average: above ``factor`` times its lowest value (and at least
    ``min_rise`` above it, so a loss near zero wobbling is not mistaken for
    divergence) for ``patience`` logged steps in a row.
    """

    def __init__(
        self,
        *,
        factor: float = 1.5,
        patience: int = 20,
        smoothing: float = 0.9,
        min_rise: float = 0.1,
        watch_rise: bool = True,
    ) -> None:
        self.watch_rise = watch_rise  # False: only a NaN or infinite loss counts (a loss that may go below 0)
        self.factor = factor
        self.patience = patience
        self.smoothing = smoothing
        self.min_rise = min_rise
        self.smoothed: float | None = None
        self.minimum = math.inf
        self.rising = 0

    def update(self, loss: float) -> str | None:
        """Feed one logged loss; returns why training diverged, or None while it's fine."""
        if not math.isfinite(loss):
            return "the loss became NaN or infinite"
        if not self.watch_rise:
            return None
        if self.smoothed is None:
            self.smoothed = loss
        else:
            self.smoothed = self.smoothing * self.smoothed + (1 - self.smoothing) * loss
        self.minimum = min(self.minimum, self.smoothed)
        threshold = max(self.factor * self.minimum, self.minimum + self.min_rise)
        self.rising = self.rising + 1 if self.smoothed > threshold else 0
        if self.rising >= self.patience:
            return (
                f"the loss kept rising: {self.smoothed:.3g} (smoothed) against a lowest {self.minimum:.3g}, "
                f"for {self.rising} steps in a row"
            )
        return None


def _reset_gpu_memory_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _process_memory_mb() -> int | None:
    """This process's resident memory: what a CPU run uses (a GPU run reports the card's peak)."""
    import psutil
    import torch

    if torch.cuda.is_available():
        return None
    return round(psutil.Process().memory_info().rss / 2**20)


def _gpu_memory_mb() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20)


class EventCallback(TrainerCallback):
    """Reports through ``on_event``; stops on ``should_stop()`` (with a checkpoint) or divergence."""

    def __init__(
        self,
        on_event: EventSink,
        should_stop: Callable[[], bool],
        detector: DivergenceDetector | None = None,
        *,
        watch_rise: bool = True,
    ) -> None:
        self.on_event = on_event
        self.should_stop = should_stop
        # watch_rise False: only a NaN or infinite loss is divergence (GRPO's loss sits near 0, either side).
        self.detector = detector or DivergenceDetector(watch_rise=watch_rise)
        self.stopped = False
        self.diverged: tuple[int, str] | None = None  # (step, reason)
        self.checkpoints: list[dict[str, Any]] = []
        self.latest_eval_loss: float | None = None
        # A preference run's on the validation data: the share of pairs preferred, and the reward margin.
        self.latest_eval_accuracy: float | None = None
        self.latest_eval_margin: float | None = None
        # A GRPO run's on the validation questions: the share of right answers, and their mean reward.
        self.latest_eval_right: float | None = None
        self.latest_eval_reward: float | None = None
        # A GRPO run's training steps: (share of questions with nothing to learn, share of right answers).
        self.reinforcement_history: list[tuple[float | None, float | None]] = []
        # Tokens/s is measured over training time only: evaluations and saves restart the clock.
        self._interval_start = time.monotonic()
        self._interval_tokens = 0.0
        # A step's metrics event waiting for the evaluation of the same step, which follows the log.
        self._held: dict[str, Any] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        _reset_gpu_memory_peak()  # a worker trains job after job: report this run's peak only
        self._interval_start = time.monotonic()
        self._interval_tokens = 0.0  # trl's token count starts again with each trainer
        # The step to start from (not 0 on a resumed run) and the total, before the first step ends.
        self.on_event({"type": "progress", "step": state.global_step, "max_steps": state.max_steps})

    def on_step_end(self, args, state, control, **kwargs):
        self._release_held()  # only if the evaluation never came
        self.on_event({"type": "progress", "step": state.global_step, "max_steps": state.max_steps})
        if not control.should_training_stop and self.should_stop():
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:  # evaluation logs and the end-of-training summary
            return control
        now = time.monotonic()
        tokens = json_number(logs.get("num_tokens"))
        tokens_per_second = None
        if tokens is not None and now > self._interval_start:
            tokens_per_second = round((tokens - self._interval_tokens) / (now - self._interval_start), 1)
            self._interval_tokens = tokens
        self._interval_start = now
        event = {
            "type": "metrics",
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": json_number(state.epoch),
            "loss": json_number(logs["loss"]),
            "eval_loss": None,  # the latest evaluation's, filled in when sent (_release_held)
            "learning_rate": json_number(logs.get("learning_rate")),
            "grad_norm": json_number(logs.get("grad_norm")),
            "tokens_per_second": tokens_per_second,
            "token_accuracy": json_number(logs.get("mean_token_accuracy")),
            "gpu_memory_mb": _gpu_memory_mb(),
            "process_memory_mb": _process_memory_mb(),
            **preference_values(logs),
            **reinforcement_values(logs),
        }
        if "nothing_to_learn" in event:
            self.reinforcement_history.append((event["nothing_to_learn"], event["right_answers"]))
        reason = self.detector.update(float(logs["loss"]))
        if reason is not None and self.diverged is None:
            self.diverged = (state.global_step, reason)
            control.should_training_stop = True
            # Weights that diverged are not worth a checkpoint or an evaluation.
            control.should_save = False
            control.should_evaluate = False
        # The trainer logs a step before evaluating it: an evaluated step's event waits for its values.
        self._held = event
        if not control.should_evaluate:
            self._release_held()
        return control

    def _release_held(self) -> None:
        """Sends the held metrics event with the latest evaluation's values."""
        if self._held is None:
            return
        event, self._held = self._held, None
        event["eval_loss"] = self.latest_eval_loss
        if "reward_margin" in event:  # a preference run's
            event["eval_preference_accuracy"] = self.latest_eval_accuracy
            event["eval_reward_margin"] = self.latest_eval_margin
        if "right_answers" in event:  # a GRPO run's
            event["eval_right_answers"] = self.latest_eval_right
            event["eval_reward"] = self.latest_eval_reward
        self.on_event(event)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        self.latest_eval_loss = json_number(metrics.get("eval_loss"))
        evaluated = preference_values(metrics, "eval_")
        self.latest_eval_accuracy = evaluated.get("preference_accuracy")
        self.latest_eval_margin = evaluated.get("reward_margin")
        reinforced = reinforcement_values(metrics, "eval_")
        self.latest_eval_right = reinforced.get("right_answers")
        self.latest_eval_reward = reinforced.get("reward")
        self._release_held()
        self.on_event(
            {
                "type": "eval",
                "step": state.global_step,
                "eval_loss": self.latest_eval_loss,
                "token_accuracy": json_number(metrics.get("eval_mean_token_accuracy")),
                **evaluated,
                **reinforced,
            }
        )
        self._interval_start = time.monotonic()
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._release_held()
        return control

    def on_save(self, args, state, control, **kwargs):
        path = str(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        checkpoint = {"step": state.global_step, "path": path}
        self.checkpoints.append(checkpoint)
        self.on_event({"type": "checkpoint", **checkpoint})
        self._interval_start = time.monotonic()
        return control

"""What a run says about itself: its plan before it starts, and after it ends which weights were kept,
whether it stopped early, and the held-out verdict. Plain functions over the trainer's state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from training_app.ml.callbacks import EventCallback, EventSink, json_number
from training_app.ml.cpu_threads import FreeCoreThreads
from training_app.ml.data import PreparedData
from training_app.ml.recipe import Recipe
from training_app.ml.verdict import quick_verdict, verdict_rows

Log = Callable[[str, str], None]


def thread_governor(log: Log) -> FreeCoreThreads:
    def on_change(threads: int, cores: int) -> None:
        if threads < cores:
            log("info", f"Training on {threads} of {cores} cores: other work is using the rest.")
        else:
            log("info", f"Training on all {cores} cores again.")

    return FreeCoreThreads(on_change=on_change)


def log_plan(log: Log, recipe: Recipe, data: PreparedData) -> None:
    """How often the run evaluates, checkpoints and may stop early, said before it starts."""
    if data.validation is None:
        return
    eval_steps, save_steps = recipe.cadence(data.train_rows)
    if recipe.keep_best and save_steps % eval_steps:
        log(
            "warning",
            f"Checkpoints every {save_steps} steps don't fall on evaluations every {eval_steps}, so the last "
            "weights are kept rather than the best: make save_steps a multiple of eval_steps next time.",
        )
    stopping = (
        f", stopping early after {recipe.early_stopping_patience} evaluations without progress"
        if recipe.early_stopping_patience
        else ""
    )
    measured = "right answers to validation questions" if recipe.reinforced else "validation loss"
    log(
        "info",
        f"About {recipe.total_steps(data.train_rows)} steps: {measured} and sample answers every "
        f"{eval_steps}, a checkpoint every {save_steps}{stopping}.",
    )


def best_checkpoint(state: Any) -> tuple[int | None, float | None]:
    """The step and validation loss of the checkpoint transformers loaded back as the best one."""
    if not state.best_model_checkpoint:
        return None, None
    step = int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[-1])
    return step, json_number(state.best_metric)


def stopped_early(state: Any, callback: EventCallback) -> bool:
    return not callback.stopped and callback.diverged is None and state.global_step < state.max_steps


def log_outcome(
    log: Log,
    state: Any,
    best_step: int | None,
    best_eval_loss: float | None,
    early_stopped: bool,
    recipe: Recipe,
) -> None:
    if early_stopped:
        log(
            "info",
            f"Stopped early at step {state.global_step} of {state.max_steps}: the "
            + ("share of right validation answers" if recipe.reinforced else "validation loss")
            + f" had not improved for {recipe.early_stopping_patience} evaluations, so more training would "
            "only memorise the training rows.",
        )
    if best_step is not None and best_eval_loss is not None:
        last = " (the last evaluated step)" if best_step == state.global_step else ""
        if recipe.reinforced:
            log(
                "info",
                f"Keeping the weights of step {best_step}{last}: {best_eval_loss:.0%} of their answers to "
                "the validation questions were right, the most of the run.",
            )
            return
        log(
            "info",
            f"Keeping the weights of step {best_step}{last}: their validation loss, {best_eval_loss:.4g}, "
            "was the lowest of the run, so they answer new questions best.",
        )


def held_out_verdict(
    model: Any, tokenizer: Any, validation_path: str | Path | None, on_event: EventSink, log: Callable
) -> dict[str, Any] | None:
    """The quick held-out check of the kept weights against the base model (training_app.ml.verdict)."""
    rows = verdict_rows(validation_path)
    if not rows:
        log("info", "No validation rows, so no held-out check: evaluate the model on questions of your own.")
        return None
    log("info", f"Checking the model on {len(rows)} held-out questions against the base model.")

    def progress(done: int, total: int) -> None:
        on_event({"type": "verdict_progress", "done": done, "total": total})

    result = quick_verdict(model, tokenizer, rows, on_progress=progress)
    if result:
        on_event({"type": "verdict", **result})
        log("info", f"{result['summary']} {result['next_step']}")
    return result

""" "Find the best settings": a handful of trial runs scheduled by Optuna, weak ones pruned early.

Each trial is an ordinary training run (:func:`training_app.ml.train.train`) with the learning rate, the
number of passes and the LoRA rank drawn around the starting recipe (normally the automatic one).
Optuna's TPE sampler picks the points and its median pruner stops a trial whose validation loss,
at the same point of its run (its n-th evaluation), is worse than the median of the trials before:
its remaining steps go to the next trial. A trial that runs to its end is scored on held-out
answers (the verdict); the winner is the completed trial that answered most of them right, then
the lowest validation loss. Its adapter is kept as it is: it already ran in full.

The study lives in a journal file in the sweep's folder, so a sweep that a lost worker or a
cancel interrupted resumes where it was: finished trials are kept, an interrupted one is counted
as failed and a new trial takes its place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training_app.ml.callbacks import EventSink, json_number
from training_app.ml.recipe import Recipe
from training_app.ml.sweep_space import trial_recipe

STUDY_FILE = "study.journal"


class PruneWeakTrial(TrainerCallback):
    """Reports each evaluation to Optuna; stops the run when the pruner says the trial is weak."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.evaluations = 0
        self.pruned = False
        self.stop_reason: str | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = json_number((metrics or {}).get("eval_loss"))
        if loss is None:
            return control
        self.evaluations += 1
        self.trial.report(loss, self.evaluations)
        if self.trial.should_prune():
            self.pruned = True
            self.stop_reason = (
                "its validation loss was worse than the median of the earlier trials at the same point "
                "of their runs, so its remaining steps go to the next trial"
            )
            control.should_training_stop = True
        return control


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    params: dict[str, Any]
    state: str  # "complete", "pruned", "failed", "running"
    eval_loss: float | None = None
    right: int | None = None
    total: int | None = None
    base_right: int | None = None
    adapter_dir: str | None = None
    final_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SweepResult:
    trials: list[TrialOutcome]
    winner: TrialOutcome | None
    stopped: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": [trial.to_dict() for trial in self.trials],
            "winner": self.winner.to_dict() if self.winner else None,
            "stopped": self.stopped,
        }


def _study(output_dir: Path, seed: int) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    output_dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(output_dir / STUDY_FILE)))
    study = optuna.create_study(
        study_name="sweep",
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2),
        load_if_exists=True,
    )
    # A trial left running by an interrupted sweep can't be continued: count it as failed.
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study


def _outcome(trial: Any) -> TrialOutcome:
    attrs = trial.user_attrs
    return TrialOutcome(
        number=trial.number,
        params=dict(trial.params),
        state=trial.state.name.lower(),
        eval_loss=json_number(attrs.get("best_eval_loss", trial.value)),
        right=attrs.get("right"),
        total=attrs.get("total"),
        base_right=attrs.get("base_right"),
        adapter_dir=attrs.get("adapter_dir"),
        final_step=attrs.get("final_step"),
    )


def best_trial(trials: list[TrialOutcome]) -> TrialOutcome | None:
    """Most held-out answers right, then the lowest validation loss, among the trials that ran in full."""
    complete = [trial for trial in trials if trial.state == "complete" and trial.adapter_dir]
    if not complete:
        return None
    return min(
        complete,
        key=lambda trial: (
            -(trial.right / trial.total) if trial.total else 0.0,
            trial.eval_loss if trial.eval_loss is not None else float("inf"),
            trial.number,
        ),
    )


def run_sweep(
    *,
    base_model_dir: str | Path,
    train_path: str | Path,
    validation_path: str | Path,
    output_dir: str | Path,
    base_recipe: Recipe,
    trials: int,
    on_event: EventSink,
    should_stop: Callable[[], bool] = lambda: False,
) -> SweepResult:
    """Run trials until ``trials`` of them have finished (complete or pruned)."""
    import optuna

    from training_app.ml.train import train

    output_dir = Path(output_dir)
    study = _study(output_dir, base_recipe.seed)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    stopped = False
    while len(study.get_trials(deepcopy=False, states=finished)) < trials:
        trial = study.ask()
        recipe = trial_recipe(base_recipe, trial)
        on_event({"type": "trial", "number": trial.number, "params": dict(trial.params), "state": "running"})

        def tagged(event: dict, number: int = trial.number) -> None:
            on_event({**event, "trial": number})

        pruning = PruneWeakTrial(trial)
        result = train(
            base_model_dir=base_model_dir,
            train_path=train_path,
            validation_path=validation_path,
            output_dir=output_dir / f"trial-{trial.number}",
            recipe=recipe,
            on_event=tagged,
            should_stop=should_stop,
            extra_callbacks=[pruning],
            check_held_out=lambda pruning=pruning: not pruning.pruned,
        )
        if result.stopped:
            stopped = True  # left running in the study: counted as failed when the sweep resumes
            break
        trial.set_user_attr("final_step", result.final_step)
        if pruning.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.set_user_attr("adapter_dir", result.adapter_dir)
            trial.set_user_attr("best_eval_loss", result.best_eval_loss)
            if result.verdict:
                trial.set_user_attr("right", result.verdict["right"])
                trial.set_user_attr("total", result.verdict["total"])
                trial.set_user_attr("base_right", result.verdict["base_right"])
            loss = result.best_eval_loss if result.best_eval_loss is not None else float("inf")
            study.tell(trial, loss)
        outcome = _outcome(study.trials[trial.number])
        on_event({"type": "trial", **outcome.to_dict()})
    outcomes = [_outcome(trial) for trial in study.get_trials(deepcopy=False)]
    return SweepResult(trials=outcomes, winner=None if stopped else best_trial(outcomes), stopped=stopped)

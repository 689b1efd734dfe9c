"""Several fine-tuning runs side by side: their loss curves, what differs in their settings, their scores."""

from __future__ import annotations

from evals_app.models import LABEL_BASE, LABEL_TUNED, Evaluation
from jobs.models import Job, JobEvent
from jobs.states import EventKind, JobState

CURVE_KEYS = ("loss", "eval_loss")
SCORE_METRICS = ("bleu", "chrf", "rougeL", "similarity", "exact_match", "judge")


def _flatten(prefix: str, value, into: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, into)
    else:
        into[prefix] = value


def run_settings(job: Job) -> dict:
    """What a run was made from, flattened: recipe settings, model and data."""
    flat: dict = {
        "base model": job.params.get("base_model_hf_id", ""),
        "dataset version": job.params.get("dataset_version_id"),
        "trial run": bool(job.params.get("trial")),
    }
    _flatten("", job.params.get("recipe", {}), flat)
    return flat


def settings_diff(jobs: list[Job]) -> list[dict]:
    """Only the settings whose values differ between the runs, each with its value per run."""
    per_job = [run_settings(job) for job in jobs]
    names = sorted({name for flat in per_job for name in flat})
    rows = []
    for name in names:
        values = [flat.get(name) for flat in per_job]
        if len({repr(value) for value in values}) > 1:
            rows.append({"setting": name, "values": values})
    return rows


def loss_curves(jobs: list[Job]) -> list[dict]:
    """Per run, the logged steps with training and validation loss (a resumed run's repeats replaced)."""
    curves = []
    for job in jobs:
        by_step: dict[int, dict] = {}
        for payload in (
            JobEvent.objects.filter(job=job, kind=EventKind.METRIC)
            .order_by("pk")
            .values_list("payload", flat=True)
        ):
            step = payload.get("step")
            if step is None:
                continue
            point = by_step.setdefault(int(step), {})
            point.update({key: payload[key] for key in CURVE_KEYS if payload.get(key) is not None})
        steps = sorted(by_step)
        curves.append(
            {
                "job_id": job.pk,
                "steps": steps,
                **{key: [by_step[step].get(key) for step in steps] for key in CURVE_KEYS},
            }
        )
    return curves


def scores_table(jobs: list[Job]) -> list[dict]:
    """Per run, its adapter's newest finished evaluation: tuned and base scores for the headline metrics,
    and its general skills check's right answers."""
    rows = []
    for job in jobs:
        evaluation = (
            Evaluation.objects.filter(adapter__job=job, job__state=JobState.SUCCEEDED)
            .select_related("dataset_version__dataset")
            .order_by("-created_at")
            .first()
        )
        scores = (evaluation.scores or {}) if evaluation else {}
        skills = (evaluation.general_skills or {}) if evaluation else {}
        rows.append(
            {
                "job": job,
                "evaluation": evaluation,
                "tuned": [
                    scores.get(LABEL_TUNED, {}).get(metric, {}).get("value") for metric in SCORE_METRICS
                ],
                "base": [scores.get(LABEL_BASE, {}).get(metric, {}).get("value") for metric in SCORE_METRICS],
                # The general skills check: right answers of the questions, and whether it forgot some.
                "general_skills": {
                    "right": skills["right"].get(LABEL_TUNED),
                    "questions": skills["questions"],
                    "forgot": (skills.get("comparison") or {}).get("verdict") == "worse",
                }
                if skills
                else None,
            }
        )
    return rows

"""The worker's rehearsal step before training: the job's rows with the base model's own answers mixed in.

The Django-free part is training_app/ml/rehearsal.py; this names the files (the cache per base model
under the data folder, the mixed rows in the job's folder) and reports progress on the job's page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from jobs.reporter import JobReporter
from training_app.ml.recipe import Recipe
from training_app.ml.rehearsal import AnswerCache, answer_with_model, mix_rehearsal

if TYPE_CHECKING:
    from training_app.runner import TrainingInputs

MIXED_ROWS_FILENAME = "train_with_rehearsal.jsonl"


def rehearsal_cache_path(model_revision: str) -> Path:
    return settings.DATA_DIR / "rehearsal" / f"{model_revision}.jsonl"


def training_rows_with_rehearsal(
    inputs: TrainingInputs, recipe: Recipe, output_dir: Path, reporter: JobReporter
) -> Path:
    """The file to train on: the version's own when the recipe asks for no rehearsal."""
    if not recipe.rehearsal or recipe.preference:
        return inputs.train_path
    reporter.stage("Rehearsal: the base model answers general questions")
    mix = mix_rehearsal(
        train_path=inputs.train_path,
        output_path=output_dir / MIXED_ROWS_FILENAME,
        share=recipe.rehearsal,
        seed=recipe.seed,
        cache=AnswerCache(rehearsal_cache_path(inputs.revision)),
        answer=answer_with_model(inputs.model_dir, recipe),
        progress=reporter.callback(),
    )
    written = f"the base model wrote {mix.written} of them now" if mix.written else "answers kept from before"
    cut = mix.asked - mix.added
    reporter.log(
        f"Rehearsal: {mix.added} of the base model's own answers to general questions join the training "
        f"conversations, so it keeps what it knew ({written}"
        + (f"; {cut} answer{'s' if cut != 1 else ''} cut off at the length limit left out" if cut else "")
        + ")."
    )
    return mix.path

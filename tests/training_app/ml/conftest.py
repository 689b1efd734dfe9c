"""A tiny Qwen2 model with the demo model's tokenizer, and one shared training run.

The model is random (2 layers, hidden size 64): the tests check the plumbing
(events, masks, checkpoints, adapters), not what it learns, and a step takes
a fraction of a second on two CPU cores.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from training_app.ml.recipe import Recipe


def conversation(index: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You answer arithmetic questions."},
            {"role": "user", "content": f"What is {index} plus {index}?"},
            {"role": "assistant", "content": f"{index} plus {index} is {2 * index}."},
        ],
        "source_line": index + 1,
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def recorder(events: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    """An on_event that keeps each event as the job runner's transport would: through strict JSON."""

    def on_event(event: dict[str, Any]) -> None:
        events.append(json.loads(json.dumps(event, allow_nan=False)))

    return on_event


def train_recorded(
    model_dir: Path, folder: Path, recipe: Recipe, train_rows: list[dict], validation_rows: list[dict] | None
) -> tuple[Any, list[dict[str, Any]]]:
    """Train on these rows (written to ``folder``) with the product's trainer; its result and its events."""
    from training_app.ml.train import train

    validation = write_jsonl(folder / "validation.jsonl", validation_rows) if validation_rows else None
    events: list[dict[str, Any]] = []
    result = train(
        base_model_dir=model_dir,
        train_path=write_jsonl(folder / "train.jsonl", train_rows),
        validation_path=validation,
        output_dir=folder / "out",
        recipe=recipe,
        on_event=recorder(events),
    )
    return result, events


# Small enough for a quick test, with evaluation and a checkpoint every 2 steps.
TINY_RECIPE = Recipe(
    lora_r=4,
    lora_alpha=8,
    batch_size=1,
    grad_accum=1,
    max_steps=4,
    eval_steps=2,
    save_steps=2,
    max_seq_len=64,
    learning_rate=1e-3,
)


@pytest.fixture(scope="session")
def canonical_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("canonical")
    train = write_jsonl(folder / "train.jsonl", [conversation(index) for index in range(16)])
    validation = write_jsonl(folder / "validation.jsonl", [conversation(index) for index in range(16, 20)])
    return train, validation


@dataclass
class Run:
    result: Any
    events: list[dict[str, Any]]
    output_dir: Path

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, canonical_files, tmp_path_factory) -> Run:
    from training_app.ml.train import train

    output_dir = tmp_path_factory.mktemp("run")
    events: list[dict[str, Any]] = []
    train_path, validation_path = canonical_files
    result = train(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=validation_path,
        output_dir=output_dir,
        recipe=TINY_RECIPE,
        on_event=recorder(events),
    )
    return Run(result, events, output_dir)

"""Sample generations during training: a few fixed validation prompts answered at each evaluation.

The guide advises checking generation quality regularly (定期评估生成质量); the
job page shows these answers changing as training goes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training_app.ml.answers import generate_answers, held_out_rows

SAMPLE_COUNT = 3
MAX_NEW_TOKENS = 48


def load_sample_prompts(
    validation_path: str | Path | None, count: int = SAMPLE_COUNT
) -> list[dict[str, Any]]:
    """The first validation conversations ending in an assistant turn: its prompt and the reference answer."""
    return held_out_rows(validation_path, count)


class SampleCallback(TrainerCallback):
    def __init__(
        self, on_event: Callable[[dict], None], samples: list[dict[str, Any]], tokenizer: Any
    ) -> None:
        self.on_event = on_event
        self.samples = samples
        self.tokenizer = tokenizer

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not self.samples or model is None:
            return
        # One batch for all prompts: a dozen evaluations a run, each costs one generate call.
        answers = generate_answers(
            model,
            self.tokenizer,
            [sample["messages"] for sample in self.samples],
            max_new_tokens=MAX_NEW_TOKENS,
        )
        self.on_event(
            {
                "type": "samples",
                "step": state.global_step,
                "samples": [
                    {**_prompt_view(sample), "answer": answer}
                    for sample, answer in zip(self.samples, answers, strict=True)
                ],
            }
        )


def _prompt_view(sample: dict[str, Any]) -> dict[str, str]:
    users = [m.get("content", "") for m in sample["messages"] if m.get("role") == "user"]
    return {"prompt": users[-1] if users else "", "reference": sample["reference"]}

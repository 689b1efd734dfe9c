"""Sample generations during training: a few fixed validation prompts answered at each evaluation.

The guide advises checking generation quality regularly (定期评估生成质量); the
job page shows these answers changing as training goes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from transformers import TrainerCallback

from jobs.ml.answers import generate_answers

SAMPLE_COUNT = 3
MAX_NEW_TOKENS = 48


def load_sample_prompts(
    validation_path: str | Path | None, count: int = SAMPLE_COUNT
) -> list[dict[str, Any]]:
    """The first validation conversations ending in an assistant turn: its prompt and the reference answer."""
    if not validation_path or not Path(validation_path).is_file():
        return []
    samples = []
    with open(validation_path, "rb") as handle:
        for line in handle:
            if len(samples) >= count:
                break
            messages = orjson.loads(line).get("messages") or []
            if len(messages) >= 2 and messages[-1].get("role") == "assistant":
                samples.append({"messages": messages[:-1], "reference": messages[-1].get("content", "")})
    return samples


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

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
        import torch

        was_training = model.training
        model.eval()
        answers = []
        try:
            with torch.no_grad():
                for sample in self.samples:
                    answers.append(
                        {**_prompt_view(sample), "answer": self._generate(model, sample["messages"])}
                    )
        finally:
            if was_training:
                model.train()
        self.on_event({"type": "samples", "step": state.global_step, "samples": answers})

    def _generate(self, model: Any, messages: list[dict]) -> str:
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        output = model.generate(
            **inputs,
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        return self.tokenizer.decode(
            output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        ).strip()


def _prompt_view(sample: dict[str, Any]) -> dict[str, str]:
    users = [m.get("content", "") for m in sample["messages"] if m.get("role") == "user"]
    return {"prompt": users[-1] if users else "", "reference": sample["reference"]}

"""Greedy answers from a model in memory, a batch at a time: for the verdict after training and the benches.

The model is whatever the trainer holds (a peft model, possibly with its adapter
switched off to answer as the base model), so no server has to start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

DEFAULT_BATCH = 8


def held_out_rows(validation_path: str | Path | None, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` validation conversations that end in an assistant turn: the messages before
    it (the question) and its content (the reference answer)."""
    rows: list[dict[str, Any]] = []
    if not validation_path or not Path(validation_path).is_file():
        return rows
    with open(validation_path, "rb") as handle:
        for line in handle:
            if len(rows) >= limit:
                break
            messages = orjson.loads(line).get("messages") or []
            if len(messages) >= 2 and messages[-1].get("role") == "assistant":
                rows.append({"messages": messages[:-1], "reference": messages[-1].get("content", "")})
    return rows


def generate_answers(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int, int], None] | None = None,
    finished: list[bool] | None = None,
) -> list[str]:
    """One greedy answer per conversation (its messages up to the assistant's turn).

    ``finished``, when given, gets one flag per answer: whether the model ended it itself (an
    end-of-sequence token) rather than being cut off at ``max_new_tokens``.
    """
    import torch

    was_training = model.training
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    model.eval()
    answers: list[str] = []
    try:
        with torch.no_grad():
            for start in range(0, len(conversations), batch_size):
                batch = conversations[start : start + batch_size]
                texts = [
                    tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                    for messages in batch
                ]
                inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                    model.device
                )
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
                prompt_length = inputs["input_ids"].shape[1]
                if finished is not None:
                    ends = _end_tokens(model, tokenizer)
                    finished += [bool(ends & set(row[prompt_length:].tolist())) for row in output]
                answers += [
                    tokenizer.decode(row[prompt_length:], skip_special_tokens=True).strip() for row in output
                ]
                if on_batch:
                    on_batch(len(answers), len(conversations))
    finally:
        tokenizer.padding_side = padding_side
        if was_training:
            model.train()
    return answers


def _end_tokens(model: Any, tokenizer: Any) -> set[int]:
    """The token ids that end an answer: the generation config's end-of-sequence ids and the tokenizer's."""
    ends = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ends = set(ends if isinstance(ends, list) else [ends] if ends is not None else [])
    if tokenizer.eos_token_id is not None:
        ends.add(tokenizer.eos_token_id)
    return ends

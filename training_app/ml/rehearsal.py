"""Rehearsal: keep general skills while learning a narrow set, with the base model's own answers mixed in.

Fine-tuning many passes over a few hundred domain conversations can make a model forget what it
knew (the general skills check of an evaluation shows it). The guide's remedy is "mix some general
instructions into your data", but a user seldom has any at hand. Rehearsal makes them: the base
model answers general questions of Lathe's own (``rehearsal_prompts.jsonl``: writing, explaining,
advice, arithmetic, formats, translation...; half English, half Chinese, none of them the general
skills check's questions), and those conversations join the training rows. Learning to give the
answers it already gave keeps the model near its starting point away from the user's topic
(self-synthesized rehearsal, Huang et al., ACL 2024). The answers are the base model's, right or
wrong, so rehearsal can keep skills but not teach new ones.

``rehearsal`` in the recipe is how many such conversations join per training conversation (0.25:
one for every four), up to the number of prompts. Their language follows the user's data. Answers
are cached per base model (its weights' fingerprint), so only a model's first run writes them;
an answer cut off by the length limit is left out (it would teach the model to stop mid-sentence).
"""

from __future__ import annotations

import math
import os
import random
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from training_app.ml.recipe import Recipe

PROMPTS_FILE = Path(__file__).with_name("rehearsal_prompts.jsonl")
# The recipe's share: at most one rehearsal conversation per conversation of the user's.
MAX_SHARE = 1.0
# What "Train again with rehearsal" sets (bench/RESULTS.md section 21).
SUGGESTED_SHARE = 0.5
MAX_NEW_TOKENS = 192
# Tokens of one rehearsal conversation, for the time estimate: 89 on average for the demo model's answers
# (bench/out/rehearsal-cache), longer for a larger model's, at most the question and 192 new tokens.
TOKENS_PER_CONVERSATION = 120
GENERATION_BATCH = 8
_CJK = re.compile(r"[\u3400-\u9fff]")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RehearsalPrompt:
    id: str
    language: str  # "en" or "zh"
    prompt: str


@dataclass(frozen=True)
class RehearsalMix:
    path: Path  # the training rows with the rehearsal conversations spread among them
    added: int  # rehearsal conversations mixed in
    asked: int  # prompts picked (some answers may have been cut off and left out)
    written: int  # answers the base model wrote for this run (0: all from the cache)


def load_rehearsal_prompts(path: Path = PROMPTS_FILE) -> list[RehearsalPrompt]:
    with open(path, "rb") as handle:
        return [RehearsalPrompt(**orjson.loads(line)) for line in handle if line.strip()]


def rehearsal_count(train_rows: int, share: float, available: int) -> int:
    """How many rehearsal conversations join ``train_rows`` at ``share`` per row (at most ``available``)."""
    if share <= 0 or train_rows <= 0:
        return 0
    return min(available, math.ceil(train_rows * share))


def rehearsal_tokens(train_rows: int, share: float) -> int:
    """About how many tokens rehearsal adds to one pass over ``train_rows`` conversations."""
    return rehearsal_count(train_rows, share, len(load_rehearsal_prompts())) * TOKENS_PER_CONVERSATION


def chinese_share(rows: Iterable[dict[str, Any]]) -> float:
    """The share of conversations whose user turns are written in Chinese (any CJK character)."""
    total = chinese = 0
    for row in rows:
        total += 1
        text = " ".join(
            str(message.get("content") or "")
            for message in row.get("messages") or []
            if message.get("role") == "user"
        )
        chinese += bool(_CJK.search(text))
    return chinese / total if total else 0.0


def pick_prompts(
    prompts: list[RehearsalPrompt], count: int, *, chinese: float, seed: int
) -> list[RehearsalPrompt]:
    """``count`` prompts, in Chinese for about the share ``chinese`` of them, the same for the same seed."""
    by_language = {
        language: [prompt for prompt in prompts if prompt.language == language] for language in ("zh", "en")
    }
    count = min(count, len(prompts))
    wanted_zh = min(len(by_language["zh"]), round(count * chinese))
    wanted_en = min(len(by_language["en"]), count - wanted_zh)
    wanted_zh = count - wanted_en  # the other language makes up for one that ran short
    generator = random.Random(seed)
    return generator.sample(by_language["zh"], wanted_zh) + generator.sample(by_language["en"], wanted_en)


class AnswerCache:
    """The base model's answers to rehearsal prompts, one JSON line each, in one file per base model."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            with open(path, "rb") as handle:
                for line in handle:
                    try:
                        entry = orjson.loads(line)
                    except orjson.JSONDecodeError:  # a line cut short by a crash: asked again
                        continue
                    self.entries[entry["id"]] = entry

    def get(self, prompt: RehearsalPrompt) -> dict[str, Any] | None:
        """The cached answer, when it was written for this very prompt and length limit."""
        entry = self.entries.get(prompt.id)
        if entry and entry.get("prompt") == prompt.prompt and entry.get("max_new_tokens") == MAX_NEW_TOKENS:
            return entry
        return None

    def put(self, prompt: RehearsalPrompt, answer: str, finished: bool) -> None:
        self.entries[prompt.id] = {
            "id": prompt.id,
            "prompt": prompt.prompt,
            "answer": answer,
            "finished": finished,
            "max_new_tokens": MAX_NEW_TOKENS,
        }

    def save(self) -> None:
        """Written whole to a temporary file and renamed: two runs of one model never see half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            for entry in self.entries.values():
                out.write(orjson.dumps(entry) + b"\n")
        os.replace(temporary, self.path)


def base_model_answers(
    prompts: list[RehearsalPrompt],
    cache: AnswerCache,
    answer: Callable[[list[RehearsalPrompt], Progress], list[tuple[str, bool]]],
    progress: Progress | None = None,
) -> tuple[dict[str, str], int]:
    """Each prompt's finished answer (cut-off ones left out), and how many were written now.

    ``answer(prompts, progress)`` writes ``(text, finished)`` for the prompts the cache lacks.
    """
    missing = [prompt for prompt in prompts if cache.get(prompt) is None]
    if missing:
        written = answer(missing, progress or (lambda done, total: None))
        for prompt, (text, finished) in zip(missing, written, strict=True):
            cache.put(prompt, text, finished)
        cache.save()
    answers = {}
    for prompt in prompts:
        entry = cache.get(prompt)
        if entry and entry["finished"] and entry["answer"].strip():
            answers[prompt.id] = entry["answer"]
    return answers, len(missing)


def answer_with_model(model_dir: Path, recipe: Recipe) -> Callable:
    """An ``answer`` function for :func:`base_model_answers`: the base model as the recipe's run loads it (in
    its precision, 4-bit for QLoRA), on the GPU where there is one, greedily, a batch at a time; loaded when
    there is something to answer and released once it has answered."""

    def answer(prompts: list[RehearsalPrompt], progress: Progress) -> list[tuple[str, bool]]:
        import gc

        import torch

        from training_app.ml.answers import generate_answers
        from training_app.ml.components import load_model, load_tokenizer

        tokenizer = load_tokenizer(model_dir)
        precision = recipe.resolve_precision("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(model_dir, recipe, precision=precision)
        if torch.cuda.is_available() and model.device.type != "cuda":
            model = model.to("cuda")
        model.config.use_cache = True
        finished: list[bool] = []
        try:
            texts = generate_answers(
                model,
                tokenizer,
                [[{"role": "user", "content": prompt.prompt}] for prompt in prompts],
                max_new_tokens=MAX_NEW_TOKENS,
                batch_size=GENERATION_BATCH,
                on_batch=progress,
                finished=finished,
            )
        finally:
            del model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return list(zip(texts, finished, strict=True))

    return answer


def mix_rehearsal(
    *,
    train_path: Path,
    output_path: Path,
    share: float,
    seed: int,
    cache: AnswerCache,
    answer: Callable[[list[RehearsalPrompt], Progress], list[tuple[str, bool]]],
    progress: Progress | None = None,
    prompts: list[RehearsalPrompt] | None = None,
) -> RehearsalMix:
    """Write the training rows with the rehearsal conversations spread among them to ``output_path``.

    The same data, share, seed and base model give the same file, so a resumed run trains on it again.
    Rehearsal rows carry ``"rehearsal": true`` and no source line of the user's file.
    """
    from training_app.ml.data import read_rows

    rows = list(read_rows(train_path))
    prompts = load_rehearsal_prompts() if prompts is None else prompts
    picked = pick_prompts(
        prompts, rehearsal_count(len(rows), share, len(prompts)), chinese=chinese_share(rows), seed=seed
    )
    answers, written = base_model_answers(picked, cache, answer, progress)
    rehearsed = [
        {
            "messages": [
                {"role": "user", "content": prompt.prompt},
                {"role": "assistant", "content": answers[prompt.id]},
            ],
            "source_line": 0,
            "rehearsal": True,
        }
        for prompt in picked
        if prompt.id in answers
    ]
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "wb") as out:
        for row in interleaved(rows, rehearsed):
            out.write(orjson.dumps(row) + b"\n")
    return RehearsalMix(path=output_path, added=len(rehearsed), asked=len(picked), written=written)


def interleaved(rows: list[dict[str, Any]], rehearsed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Both lists spread evenly through one, each in its order: any first N rows (a trial run's) hold
    rehearsal conversations in the same proportion as the whole."""
    placed = [((index + 0.5) / len(rows), 0, row) for index, row in enumerate(rows)]
    placed += [((index + 0.5) / len(rehearsed), 1, row) for index, row in enumerate(rehearsed)]
    return [row for _, _, row in sorted(placed, key=lambda item: item[:2])]

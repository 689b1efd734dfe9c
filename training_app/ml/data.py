"""Canonical conversations to token ids, with the loss on the assistant's words only.

Training reads the canonical rows (``{"messages": [...], "source_line": n}``, see
``datasets_app/core/canonical.py``), renders each with the base model's own chat
template, and marks which tokens the assistant wrote: the model learns to answer,
not to predict the user's questions or the system prompt. Every assistant turn
counts, with its end-of-turn token (so the model learns to stop).

The result has ``input_ids`` and ``assistant_masks`` columns, the pre-tokenized
form trl's ``SFTTrainer`` accepts as it is: it turns the mask into labels (-100
elsewhere) without tokenizing again.

Which tokens are the assistant's is found, in order of preference:

1. ``template``: the tokenizer's template has ``{% generation %}`` markers, and
   transformers returns the mask itself;
2. ``trl_training_template``: trl 1.16 ships a marked copy of this template
   (Qwen2.5, Qwen3, Llama 3, Gemma, Phi-3...);
3. ``rendered_prefixes``: any other template (SmolLM2's, for one) is rendered
   up to just before and just after each assistant turn; the characters between
   are the assistant's, mapped to tokens through the tokenizer's offsets.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from datasets import Dataset

from training_app.ml.errors import TrainingDataError

Progress = Callable[[int, int], None]
# Keys a chat template may read from a canonical message; others are dropped.
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
# How many dropped rows are named by their line in the log message.
DROPPED_LINES_KEPT = 50


@dataclass
class PreparedData:
    train: Dataset
    validation: Dataset | None
    mask_method: str
    dropped_train_rows: int = 0
    dropped_validation_rows: int = 0
    # Source lines of the first dropped rows, to name them in the log.
    dropped_train_lines: list[int] = field(default_factory=list)
    dropped_validation_lines: list[int] = field(default_factory=list)

    @property
    def dropped_rows(self) -> int:
        return self.dropped_train_rows + self.dropped_validation_rows

    @property
    def train_rows(self) -> int:
        return len(self.train)

    @property
    def validation_rows(self) -> int:
        return len(self.validation) if self.validation is not None else 0

    @classmethod
    def with_dropped(
        cls,
        train: Dataset,
        validation: Dataset | None,
        mask_method: str,
        dropped: list[int],
        validation_dropped: list[int],
    ) -> PreparedData:
        """Data whose rows that gave nothing are counted, the first of them named by their lines."""
        return cls(
            train=train,
            validation=validation,
            mask_method=mask_method,
            dropped_train_rows=len(dropped),
            dropped_validation_rows=len(validation_dropped),
            dropped_train_lines=dropped[:DROPPED_LINES_KEPT],
            dropped_validation_lines=validation_dropped[:DROPPED_LINES_KEPT],
        )


def load_records(
    path: str | Path,
    names: tuple[str, ...],
    records_of: Callable[[dict[str, Any]], list[dict[str, Any]]],
    *,
    limit: int | None = None,
) -> tuple[Dataset, list[int]]:
    """A canonical file's rows as the records ``records_of`` makes of each (columns ``names``), and the
    source lines of the rows that made none."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(
            f"The data file {path.name} is missing.", "Make the dataset version again, or pick another one."
        )
    columns: dict[str, list] = {name: [] for name in names}
    unused: list[int] = []
    for index, row in enumerate(itertools.islice(read_rows(path), limit)):
        records = records_of(row)
        if not records:
            unused.append(int(row.get("source_line", index + 1)))
        for record in records:
            for name in names:
                columns[name].append(record[name])
    return Dataset.from_dict(columns), unused


def load_conversations(path: str | Path, *, limit: int | None = None) -> Dataset:
    """Canonical JSONL as a Dataset with ``messages_json`` and ``source_line`` columns.

    Messages stay JSON text: tool calls differ in shape from row to row, which
    Arrow's fixed column types can't hold, and the chat template wants the
    original dicts anyway.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(
            f"The data file {path.name} is missing.",
            "Make the dataset version again, or pick another one.",
        )
    messages_json: list[str] = []
    source_lines: list[int] = []
    for index, row in enumerate(itertools.islice(read_rows(path), limit)):
        messages_json.append(orjson.dumps(row.get("messages") or []).decode())
        source_lines.append(int(row.get("source_line", index + 1)))
    return Dataset.from_dict({"messages_json": messages_json, "source_line": source_lines})


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                raise TrainingDataError(
                    f"Line {number} of {path.name} is not a valid conversation row.",
                    "The file was changed after validation; make the dataset version again.",
                ) from None


class ConversationTokenizer:
    """Turns one conversation into ``(input_ids, assistant_mask)``, cut to ``max_seq_len``."""

    def __init__(self, tokenizer: Any, max_seq_len: int) -> None:
        from trl.chat_template_utils import get_training_chat_template, has_generation_markers

        if not tokenizer.chat_template:
            raise TrainingDataError(
                "The base model has no chat template, so conversations can't be laid out for it.",
                "Pick an instruction-tuned (chat) model, or one whose tokenizer_config.json "
                "has a chat_template.",
            )
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.chat_template: str | None = None
        if has_generation_markers(tokenizer.chat_template):
            self.method = "template"
        else:
            try:
                self.chat_template = get_training_chat_template(tokenizer)
            except ValueError:  # trl has no marked copy of this template
                self.chat_template = None
            self.method = "trl_training_template" if self.chat_template else "rendered_prefixes"

    def __call__(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
        messages = [clean_message(message) for message in messages]
        if not messages:
            return [], []
        if self.method == "rendered_prefixes":
            input_ids, mask = self._mask_from_rendered_prefixes(messages)
        else:
            encoded = self.tokenizer.apply_chat_template(
                messages,
                chat_template=self.chat_template,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
            input_ids, mask = list(encoded["input_ids"]), list(encoded["assistant_masks"])
        return input_ids[: self.max_seq_len], mask[: self.max_seq_len]

    def _render(self, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _mask_from_rendered_prefixes(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
        text = self._render(messages, generation_prompt=False)
        spans: list[tuple[int, int]] = []
        cursor = 0
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            span = self._span_by_prefixes(messages, index, text) if index else None
            if span is None:
                span = self._span_by_search(message, text, cursor)
            if span is not None and span[1] > span[0]:
                spans.append(span)
                cursor = span[1]
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        mask = [
            int(end > start and any(low <= start < high for low, high in spans))
            for start, end in encoded["offset_mapping"]
        ]
        return list(encoded["input_ids"]), mask

    def _span_by_prefixes(
        self, messages: list[dict[str, Any]], index: int, text: str
    ) -> tuple[int, int] | None:
        """Characters of turn ``index``: after the prompt that asks for it, up to its end-of-turn."""
        before = self._render(messages[:index], generation_prompt=True)
        through = self._render(messages[: index + 1], generation_prompt=False).rstrip()
        # Only valid when the template renders earlier turns the same whatever follows.
        if through.startswith(before) and text.startswith(through):
            return len(before), len(through)
        return None

    def _span_by_search(self, message: dict[str, Any], text: str, cursor: int) -> tuple[int, int] | None:
        """Fallback for templates that re-render earlier turns: find the reply's text itself."""
        content = message.get("content") or ""
        if not content:
            return None
        start = text.find(content, cursor)
        if start < 0:
            return None
        end = start + len(content)
        eos = self.tokenizer.eos_token
        if eos and text.startswith(eos, end):
            end += len(eos)
        return start, end


def clean_message(message: dict[str, Any]) -> dict[str, Any]:
    cleaned = {key: message[key] for key in _MESSAGE_KEYS if message.get(key) is not None}
    cleaned.setdefault("content", "")
    return cleaned


def tokenize_conversations(
    conversations: Dataset,
    tokenizer: Any,
    *,
    max_seq_len: int,
    progress: Progress | None = None,
) -> tuple[Dataset, list[int], str]:
    """Tokenized rows, the source lines of the rows dropped, and the masking method used.

    A row is dropped when it renders to nothing or no assistant token is left
    after cutting it to ``max_seq_len`` (a long prompt can fill the whole length).
    """
    encode = ConversationTokenizer(tokenizer, max_seq_len)
    input_ids: list[list[int]] = []
    masks: list[list[int]] = []
    dropped: list[int] = []
    total = len(conversations)
    for done, row in enumerate(conversations, start=1):
        try:
            ids, mask = encode(orjson.loads(row["messages_json"]))
        except Exception:  # a template that rejects one row (an unknown role...) must not stop the others
            ids, mask = [], []
        if ids and any(mask):
            input_ids.append(ids)
            masks.append(mask)
        else:
            dropped.append(row["source_line"])
        if progress is not None and (done % 500 == 0 or done == total):
            progress(done, total)
    dataset = Dataset.from_dict({"input_ids": input_ids, "assistant_masks": masks})
    return dataset, dropped, encode.method


def prepare_data(
    *,
    tokenizer: Any,
    train_path: str | Path,
    validation_path: str | Path | None,
    max_seq_len: int,
    trial_rows: int | None = None,
    progress: Progress | None = None,
) -> PreparedData:
    """Load and tokenize the training (and validation) rows; ``trial_rows`` keeps the first N of each."""
    train_rows = load_conversations(train_path, limit=trial_rows)
    if len(train_rows) == 0:
        raise TrainingDataError(
            "The training data has no rows.", "Pick a dataset version with at least one conversation."
        )
    train, dropped, method = tokenize_conversations(
        train_rows, tokenizer, max_seq_len=max_seq_len, progress=progress
    )
    if len(train) == 0:
        raise TrainingDataError(
            f"None of the {len(train_rows)} training conversations has any assistant reply left "
            f"to learn from once cut to {max_seq_len} tokens.",
            "Check that each conversation has a non-empty assistant reply, and raise the maximum sequence "
            "length if the system prompt or question alone is longer than it.",
        )
    validation = None
    validation_dropped: list[int] = []
    if validation_path is not None:
        validation_rows = load_conversations(validation_path, limit=trial_rows)
        if len(validation_rows):
            validation, validation_dropped, _ = tokenize_conversations(
                validation_rows, tokenizer, max_seq_len=max_seq_len
            )
            if len(validation) == 0:
                validation = None
    return PreparedData.with_dropped(train, validation, method, dropped, validation_dropped)

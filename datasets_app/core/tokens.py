"""Counting tokens the way a base model's tokenizer and chat template will.

Cleaning (the token-length rule) and statistics need "how long is this
conversation for this model", without loading the model. A conversation costs
its message contents plus the chat template's framing (``<|im_start|>user\\n``
... ``<|im_end|>\\n``), which is measured once from the template itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

# Used when a tokenizer has no chat template: about what ChatML costs.
FALLBACK_MESSAGE_OVERHEAD = 5


@runtime_checkable
class TokenCounter(Protocol):
    name: str
    per_message_overhead: int

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...

    def conversation_tokens(self, messages: Sequence[Mapping]) -> int: ...


class WhitespaceTokenCounter:
    """One token per whitespace-separated word: for tests that need no real tokenizer."""

    _WORD = re.compile(r"\S+")

    def __init__(self, per_message_overhead: int = 0, name: str = "whitespace") -> None:
        self.per_message_overhead = per_message_overhead
        self.name = name

    def count(self, text: str) -> int:
        return len(text.split())

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(text) for text in texts]

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        for index, match in enumerate(self._WORD.finditer(text), start=1):
            if index == max_tokens:
                return text[: match.end()]
        return text

    def conversation_tokens(self, messages: Sequence[Mapping]) -> int:
        return sum(self.count_many([m["content"] for m in messages])) + self.per_message_overhead * len(
            messages
        )


class HfTokenCounter:
    """Counts with a Hugging Face fast tokenizer and its chat template.

    ``per_message_overhead`` (the Protocol's single number) is the largest
    per-role framing cost, so estimates built on it never undercount.
    ``conversation_tokens`` is exact for ordinary content: it uses the framing
    of each role, plus what the template adds when a conversation has no system
    message (SmolLM2 and Qwen2.5 insert a default system prompt).
    """

    def __init__(
        self, backend, *, name: str, role_overhead: dict[str, int], implicit_system_tokens: int
    ) -> None:
        self._backend = backend  # a tokenizers.Tokenizer
        self.name = name
        self.role_overhead = role_overhead
        self.implicit_system_tokens = implicit_system_tokens
        self.per_message_overhead = max(role_overhead.values(), default=FALLBACK_MESSAGE_OVERHEAD)

    @classmethod
    def from_dir(cls, path: str | Path, *, name: str | None = None) -> HfTokenCounter:
        # local_files_only: loading from a folder must never reach for the Hub.
        # (Setting HF_HUB_OFFLINE here instead would switch the whole worker
        # process offline, including later base-model downloads.)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"The tokenizer in {path} has no fast (Rust) version; token counting needs one.")
        counter = cls(backend, name=name or Path(path).name, role_overhead={}, implicit_system_tokens=0)
        if tokenizer.chat_template:
            counter.role_overhead, counter.implicit_system_tokens = _measure_template(tokenizer, counter)
        else:
            counter.role_overhead = dict.fromkeys(
                ("system", "user", "assistant", "tool"), FALLBACK_MESSAGE_OVERHEAD
            )
        counter.per_message_overhead = max(counter.role_overhead.values())
        return counter

    def count(self, text: str) -> int:
        return len(self._backend.encode(text, add_special_tokens=False))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        # One Rust call for the batch: it runs on all cores and skips the
        # offsets that count() does not need.
        if not texts:
            return []
        encode = getattr(self._backend, "encode_batch_fast", self._backend.encode_batch)
        return [len(encoding) for encoding in encode(list(texts), add_special_tokens=False)]

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        encoding = self._backend.encode(text, add_special_tokens=False)
        if len(encoding) <= max_tokens:
            return text
        offsets = encoding.offsets
        # Cut where the first token past the limit starts. Byte-level tokens
        # can split one character (CJK, emoji) across tokens; cutting at a
        # token's start drops that character whole rather than half of it.
        cut = offsets[max_tokens][0]
        prefix = text[:cut]
        # Re-tokenising a prefix can merge differently at the cut; step back
        # until it really fits.
        index = max_tokens
        while index > 0 and self.count(prefix) > max_tokens:
            index -= 1
            cut = offsets[index][0]
            prefix = text[:cut]
        return prefix

    def message_overhead(self, role: str) -> int:
        return self.role_overhead.get(role, self.per_message_overhead)

    def framing_tokens(self, roles: Sequence[str]) -> int:
        """Template tokens around messages with these roles, contents excluded."""
        total = sum(self.message_overhead(role) for role in roles)
        if roles and roles[0] != "system":
            total += self.implicit_system_tokens
        return total

    def conversation_tokens(self, messages: Sequence[Mapping]) -> int:
        contents = self.count_many([message["content"] for message in messages])
        return sum(contents) + self.framing_tokens([message["role"] for message in messages])


def framing_for(counter: TokenCounter, roles: Sequence[str]) -> int:
    """Template tokens around messages with these roles: exact where the counter knows them."""
    framing = getattr(counter, "framing_tokens", None)
    return framing(roles) if framing else counter.per_message_overhead * len(roles)


def conversation_tokens_many(counter: TokenCounter, conversations: Iterable[Sequence[Mapping]]) -> list[int]:
    """Token counts of many conversations with one batched tokenizer call."""
    conversations = list(conversations)
    counts = counter.count_many([message["content"] for messages in conversations for message in messages])
    totals: list[int] = []
    position = 0
    for messages in conversations:
        size = len(messages)
        roles = [message["role"] for message in messages]
        totals.append(sum(counts[position : position + size]) + framing_for(counter, roles))
        position += size
    return totals


def _measure_template(tokenizer, counter: HfTokenCounter) -> tuple[dict[str, int], int]:
    """Per-role framing cost, and the cost of a system prompt the template adds by itself.

    Renders growing prefixes of a short conversation and subtracts the content
    tokens; differences between prefixes give each role's framing.
    """
    sample = [
        {"role": "system", "content": "hello"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hello"},
    ]
    content = counter.count("hello")

    def rendered_tokens(messages: list[dict]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return counter.count(text)

    try:
        with_system = [rendered_tokens(sample[: size + 1]) for size in range(3)]
    except Exception:  # noqa: BLE001 - templates that refuse a system role raise their own errors
        with_system = None
    if with_system is None:
        # No system role (Gemma-style): the user message carries any fixed prefix.
        user_only, user_assistant = rendered_tokens(sample[1:2]), rendered_tokens(sample[1:])
        user = max(0, user_only - content)
        assistant = max(0, user_assistant - user_only - content)
        return {"system": user, "user": user, "assistant": assistant, "tool": max(user, assistant)}, 0
    overhead = {
        "system": max(0, with_system[0] - content),
        "user": max(0, with_system[1] - with_system[0] - content),
        "assistant": max(0, with_system[2] - with_system[1] - content),
    }
    overhead["tool"] = max(overhead.values())
    without_system = rendered_tokens(sample[1:])
    implicit = without_system - 2 * content - overhead["user"] - overhead["assistant"]
    return overhead, max(0, implicit)

"""Conversations longer than the training sequence length, in the model's tokens.

Modes (the guide: "avoid inputs beyond the context limit; truncate or split
where needed"):
    drop      remove the conversation
    truncate  shorten the last assistant message until the whole fits
    split     cut a multi-turn conversation into consecutive chunks of whole
              user/assistant exchanges, each repeating the system message
"""

from __future__ import annotations

from collections.abc import Sequence

from datasets_app.core.canonical import CanonicalRow, Message
from datasets_app.core.cleaning.result import RuleOutcome
from datasets_app.core.tokens import TokenCounter, framing_for


class TokenLengthStep:
    rule = "token_length"

    def __init__(self, counter: TokenCounter, max_seq_len: int, mode: str) -> None:
        self.counter = counter
        self.max_seq_len = max_seq_len
        self.mode = mode

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]:
        # Count every message of the chunk in one batched tokenizer call.
        contents = [message["content"] for row in rows for message in row["messages"]]
        counts = self.counter.count_many(contents)
        kept: list[CanonicalRow] = []
        position = 0
        for row in rows:
            size = len(row["messages"])
            message_tokens = counts[position : position + size]
            position += size
            total = sum(message_tokens) + self._framing(row["messages"])
            if total <= self.max_seq_len:
                kept.append(row)
            elif self.mode == "drop" or "rejected" in row or "label" in row:
                # A preference row is dropped whatever the mode: a cut or split answer would no longer be
                # the answer its rating is about.
                outcome.record_removed(row, f"{total:,} tokens; the limit is {self.max_seq_len:,}")
            elif self.mode == "truncate":
                kept.extend(self._truncate(row, message_tokens, total, outcome))
            else:
                kept.extend(self._split(row, message_tokens, total, outcome))
        return kept

    def _framing(self, messages: Sequence[Message]) -> int:
        return framing_for(self.counter, [message["role"] for message in messages])

    def _truncate(
        self, row: CanonicalRow, message_tokens: list[int], total: int, outcome: RuleOutcome
    ) -> list[CanonicalRow]:
        messages = row["messages"]
        last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
        if last is None:
            outcome.record_removed(row, f"{total:,} tokens and no assistant message to shorten")
            return []
        budget = message_tokens[last] - (total - self.max_seq_len)
        shortened = self.counter.truncate(messages[last]["content"], budget) if budget > 0 else ""
        if not shortened.strip():
            outcome.record_removed(
                row,
                f"{total:,} tokens; even without its last answer it would not fit in {self.max_seq_len:,}",
            )
            return []
        new_messages = [dict(message) for message in messages]
        new_messages[last]["content"] = shortened
        new_row = {**row, "messages": new_messages}
        # Re-tokenising the cut text can differ at the edge; check the real total.
        if self.counter.conversation_tokens(new_messages) > self.max_seq_len:
            outcome.record_removed(row, f"{total:,} tokens; shortening the last answer was not enough")
            return []
        outcome.record_changed(row, [new_row])
        return [new_row]

    def _split(
        self, row: CanonicalRow, message_tokens: list[int], total: int, outcome: RuleOutcome
    ) -> list[CanonicalRow]:
        messages = row["messages"]
        head = 0
        while head < len(messages) and messages[head]["role"] == "system":
            head += 1
        # Running sums: re-adding the whole chunk for each exchange took time quadratic in the
        # number of messages (a 4 MB row of short turns: minutes).
        cost = _ChunkCost(self.counter, messages, message_tokens, head)
        chunks: list[list[int]] = []
        current: list[int] = []
        current_tokens = cost.prefix
        for exchange in _exchanges(messages, head):
            if not any(messages[i]["role"] == "assistant" for i in exchange):
                continue  # a trailing question without an answer teaches nothing
            grown = cost.grown(current_tokens, bool(current), exchange)
            if grown <= self.max_seq_len:
                current.extend(exchange)
                current_tokens = grown
                continue
            if current:
                chunks.append(current)
            alone = cost.grown(cost.prefix, False, exchange)
            current, current_tokens = (
                (list(exchange), alone) if alone <= self.max_seq_len else ([], cost.prefix)
            )
        if current:
            chunks.append(current)
        if not chunks:
            outcome.record_removed(
                row, f"{total:,} tokens; no single exchange fits in {self.max_seq_len:,} tokens"
            )
            return []
        system = [dict(message) for message in messages[:head]]
        new_rows = [{**row, "messages": system + [dict(messages[i]) for i in chunk]} for chunk in chunks]
        outcome.record_changed(row, new_rows)
        return new_rows


class _ChunkCost:
    """Tokens of the system messages plus a chunk of exchanges, grown one exchange at a time.

    A template's framing is a cost per message plus one that depends on the first
    message's role (see ``tokens.framing_for``), so once a conversation has a first
    message, each further message adds its content and its role's cost.
    """

    def __init__(
        self, counter: TokenCounter, messages: Sequence[Message], message_tokens: list[int], head: int
    ) -> None:
        self.counter = counter
        self.messages = messages
        self.message_tokens = message_tokens
        self.head = head
        self._added: dict[str, int] = {}
        self.prefix = self._whole(range(head)) if head else 0

    def grown(self, tokens: int, has_chunk: bool, exchange: list[int]) -> int:
        """Tokens once ``exchange`` is added to the system messages and a chunk worth ``tokens``."""
        if not self.head and not has_chunk:
            return self._whole(exchange)
        return tokens + sum(
            self.message_tokens[i] + self._role_cost(self.messages[i]["role"]) for i in exchange
        )

    def _whole(self, indices) -> int:
        roles = [self.messages[i]["role"] for i in indices]
        return sum(self.message_tokens[i] for i in indices) + framing_for(self.counter, roles)

    def _role_cost(self, role: str) -> int:
        if role not in self._added:
            base = framing_for(self.counter, ["system"])
            self._added[role] = framing_for(self.counter, ["system", role]) - base
        return self._added[role]


def _exchanges(messages: Sequence[Message], start: int) -> list[list[int]]:
    """Message indices grouped into exchanges: a user message and the replies that follow it."""
    exchanges: list[list[int]] = []
    for index in range(start, len(messages)):
        if messages[index]["role"] == "user" or not exchanges:
            exchanges.append([index])
        else:
            exchanges[-1].append(index)
    return exchanges

"""The shape every cleaning step shares."""

from __future__ import annotations

from typing import Protocol

from datasets_app.core.canonical import CanonicalRow
from datasets_app.core.cleaning.result import RuleOutcome


class Step(Protocol):
    """One rule, applied to a chunk of rows in file order.

    A step returns the rows that go on to the next step (kept, changed, or
    split into several) and records what it removed or changed on ``outcome``.
    Working on chunks rather than single rows lets steps batch the expensive
    parts (MinHash signatures, tokenisation); stateful steps (deduplication)
    still see rows strictly in file order, so the result is the same as
    row-by-row processing.
    """

    rule: str

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]: ...

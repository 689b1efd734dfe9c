"""Exact and near-duplicate removal. The first occurrence in file order is kept.

Memory grows with the rows kept, never with their text: exact deduplication
keeps an 8-byte hash and a line number per row; near deduplication keeps its
LSH band keys and a 16-bit-per-value copy of each signature (128 bytes at 64
permutations) to verify candidates.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from datasets_app.core.canonical import CanonicalRow, row_text
from datasets_app.core.cleaning import minhash
from datasets_app.core.cleaning.hash_index import HashIndex
from datasets_app.core.cleaning.result import RuleOutcome

_SPACE = re.compile(r"\s+")


def exact_key(row: CanonicalRow, normalise: bool) -> int:
    """8-byte hash of the roles and contents (lowest bit set for HashIndex)."""
    parts = []
    # A preference pair is its prompt and both answers: the same prompt and preferred answer with another
    # rejected one is another pair. A rated answer with the other rating is another row too.
    sides = [("", row["messages"]), ("rejected:", row.get("rejected", ()))]
    for side, messages in sides:
        for message in messages:
            content = message["content"]
            if normalise:
                content = _SPACE.sub(" ", content).strip().casefold()
            parts.append(f"{side}{message['role']}\x1f{content}")
    if "label" in row:
        parts.append(f"label\x1f{row['label']}")
    digest = hashlib.blake2b("\x1e".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


class ExactDedupStep:
    rule = "exact_dedup"

    def __init__(self, normalise: bool) -> None:
        self.normalise = normalise
        self._seen = HashIndex()  # key -> source line of the kept row

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]:
        keys = [exact_key(row, self.normalise) for row in rows]
        earlier = self._seen.get(np.array(keys, dtype=np.uint64))
        in_chunk: dict[int, int] = {}
        kept = []
        for row, key, line in zip(rows, keys, earlier.tolist(), strict=True):
            if line < 0:
                line = in_chunk.get(key, -1)
            if line >= 0:
                outcome.record_removed(row, f"the same text as line {line}")
                continue
            in_chunk[key] = row.get("source_line", 0)
            kept.append(row)
        self._seen.put_new(np.fromiter(in_chunk.keys(), np.uint64), np.fromiter(in_chunk.values(), np.int64))
        return kept


class _SignatureStore:
    """The kept rows' signatures (low 16 bits of each value) and source lines, by ordinal."""

    def __init__(self, num_perm: int) -> None:
        self._signatures = np.empty((1024, num_perm), dtype=np.uint16)
        self._lines = np.empty(1024, dtype=np.int64)
        self.count = 0

    def append(self, signature: np.ndarray, line: int) -> int:
        if self.count == len(self._lines):
            self._signatures = np.concatenate([self._signatures, np.empty_like(self._signatures)])
            self._lines = np.concatenate([self._lines, np.empty_like(self._lines)])
        self._signatures[self.count] = signature
        self._lines[self.count] = line
        self.count += 1
        return self.count - 1

    def signatures(self, ordinals: list[int]) -> np.ndarray:
        return self._signatures[ordinals]

    def line(self, ordinal: int) -> int:
        return int(self._lines[ordinal])


class NearDedupStep:
    """MinHash + LSH: rows whose estimated Jaccard similarity reaches the threshold.

    LSH finds candidates (rows sharing a band); each candidate is then checked
    against its stored signature, so the threshold means what it says.
    """

    rule = "near_dedup"

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows_per_band = minhash.lsh_params(threshold, num_perm)
        self._index = HashIndex()  # band key -> ordinal of the first kept row with it
        self._store = _SignatureStore(num_perm)

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]:
        if not rows:
            return rows
        texts = [minhash.normalise(row_text(row)) for row in rows]
        signatures = minhash.signatures(texts, self.num_perm).astype(np.uint16)
        keys = minhash.band_keys(signatures, self.bands, self.rows_per_band)
        earlier = self._index.get(keys.ravel()).reshape(keys.shape)
        in_chunk: dict[int, int] = {}
        kept = []
        for position, row in enumerate(rows):
            row_keys = keys[position].tolist()
            candidates = {ordinal for ordinal in earlier[position].tolist() if ordinal >= 0}
            candidates.update(in_chunk[key] for key in row_keys if key in in_chunk)
            match = self._best_match(signatures[position], sorted(candidates))
            if match is not None:
                ordinal, score = match
                outcome.record_removed(
                    row, f"nearly the same as line {self._store.line(ordinal)} (similarity ≈ {score:.2f})"
                )
                continue
            ordinal = self._store.append(signatures[position], row.get("source_line", 0))
            for band, key in enumerate(row_keys):
                # First kept row per bucket wins; later ones are found through their other bands.
                if earlier[position, band] < 0 and key not in in_chunk:
                    in_chunk[key] = ordinal
            kept.append(row)
        self._index.put_new(np.fromiter(in_chunk.keys(), np.uint64), np.fromiter(in_chunk.values(), np.int64))
        return kept

    def _best_match(self, signature: np.ndarray, candidates: list[int]) -> tuple[int, float] | None:
        if not candidates:
            return None
        scores = minhash.similarity(signature, self._store.signatures(candidates))
        best = int(np.argmax(scores))
        if scores[best] >= self.threshold:
            return candidates[best], float(scores[best])
        return None

"""A compact hash table from 64-bit keys to integers, looked up a batch at a time.

Deduplication has to remember something about every row it kept. A Python
``dict`` costs about 100 bytes per entry (an int object for the key, one for
the value, the table slot); datasketch's in-memory LSH storage keeps a bytes
key and a ``set`` per bucket per band, about 2.6 KB per row with 7 bands. Two
numpy arrays with open addressing need 12 bytes per slot, 20 to 40 per entry
as the table fills and doubles, which keeps a million-row file well within a worker's memory.

Keys are hashes, so slots are taken from their bits directly; key 0 marks an
empty slot, which is why callers pass keys with the lowest bit set. Values are
int32: row ordinals and line numbers, both far below 2**31.
"""

from __future__ import annotations

import numpy as np

_MAX_LOAD = 0.6


class HashIndex:
    def __init__(self, capacity: int = 1 << 14) -> None:
        size = 1 << max(4, (capacity - 1).bit_length())
        self._keys = np.zeros(size, dtype=np.uint64)
        self._values = np.zeros(size, dtype=np.int32)
        self._mask = np.uint64(size - 1)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._values.nbytes

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value stored for each key, or -1 where the key is absent."""
        keys = np.asarray(keys, dtype=np.uint64)
        result = np.full(len(keys), -1, dtype=np.int32)
        pending = np.arange(len(keys))
        slots = self._slot(keys)
        # Linear probing, advanced for every unresolved key at once.
        while pending.size:
            found = self._keys[slots]
            hit = found == keys[pending]
            result[pending[hit]] = self._values[slots[hit]]
            unresolved = ~(hit | (found == 0))
            pending, slots = pending[unresolved], (slots[unresolved] + np.uint64(1)) & self._mask
        return result

    def put_new(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Insert keys that are absent and distinct (the caller has checked both)."""
        keys = np.asarray(keys, dtype=np.uint64)
        values = np.asarray(values, dtype=np.int32)
        if not keys.size:
            return
        if (self._count + keys.size) > _MAX_LOAD * len(self._keys):
            self._grow(self._count + keys.size)
        self._place(keys, values)
        self._count += keys.size

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        # The lowest bit is always set, so skip it.
        return (keys >> np.uint64(1)) & self._mask

    def _place(self, keys: np.ndarray, values: np.ndarray) -> None:
        slots = self._slot(keys)
        while keys.size:
            free = np.flatnonzero(self._keys[slots] == 0)
            # Several keys may want the same free slot; the first of each wins
            # and the others probe on.
            _, first = np.unique(slots[free], return_index=True)
            winners = free[first]
            self._keys[slots[winners]] = keys[winners]
            self._values[slots[winners]] = values[winners]
            rest = np.ones(keys.size, dtype=bool)
            rest[winners] = False
            keys, values = keys[rest], values[rest]
            slots = (slots[rest] + np.uint64(1)) & self._mask

    def _grow(self, needed: int) -> None:
        used = self._keys != 0
        old_keys, old_values = self._keys[used], self._values[used]
        size = len(self._keys)
        while needed > _MAX_LOAD * size:
            size *= 2
        self._keys = np.zeros(size, dtype=np.uint64)
        self._values = np.zeros(size, dtype=np.int32)
        self._mask = np.uint64(size - 1)
        self._place(old_keys, old_values)

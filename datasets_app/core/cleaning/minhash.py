"""MinHash signatures of row texts, and the LSH bands used to find near duplicates.

Shingles are character n-grams, so Chinese (no spaces between words) works as
well as English: 5-grams for mostly alphabetic text, 3-grams when CJK
characters dominate (one CJK character carries about a word's worth of
meaning, so 5-grams would make one changed word look like a big difference).

Hashing every n-gram in Python is the slow part of MinHash, so the n-gram
hashes of a text are computed in one vectorised numpy pass over its code
points and handed to datasketch's ``MinHash.update_batch`` as ready integers.

``update_batch`` builds an (n-grams x permutations) array, so a long row is fed in
blocks of at most ``_BLOCK_CELLS`` cells, each distinct n-gram once: memory stays
bounded whatever the row length and the number of permutations (the same
signature, since a MinHash is the minimum over the set of n-grams).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

MINHASH_SEED = 1
# Recall matters more than precision in the LSH step: every candidate is
# verified against the stored signature, so extra candidates cost little while
# missed ones are duplicates left in the data.
LSH_WEIGHTS = (0.1, 0.9)
CJK_START = 0x2E80  # CJK radicals onwards: CJK, kana, hangul, full-width forms
_BLOCK_CELLS = 4_000_000  # n-grams x permutations per update_batch: about 32 MB of temporaries
_SPACE = re.compile(r"\s+")
# Odd 64-bit multipliers for a polynomial hash of n consecutive code points.
_NGRAM_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0xFF51AFD7ED558CCD],
    dtype=np.uint64,
)


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def ngram_hashes(text: str) -> list[int]:
    """32-bit hashes of the character n-grams of ``text`` (already normalised)."""
    return _ngram_array(text).tolist()


def _ngram_array(text: str) -> np.ndarray:
    codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if not codepoints.size:
        return codepoints
    size = 3 if np.count_nonzero(codepoints >= CJK_START) * 2 > codepoints.size else 5
    size = min(size, codepoints.size)
    count = codepoints.size - size + 1
    hashes = codepoints[:count] * _NGRAM_MULTIPLIERS[0]
    for offset in range(1, size):
        hashes += codepoints[offset : offset + count] * _NGRAM_MULTIPLIERS[offset]
    # Fold to the 32 bits datasketch's default affine32 scheme expects.
    return (hashes >> np.uint64(32)) ^ (hashes & np.uint64(0xFFFFFFFF))


def signatures(texts: Sequence[str], num_perm: int) -> np.ndarray:
    """One MinHash signature per text, as a (len(texts), num_perm) uint32 array."""
    result = np.empty((len(texts), num_perm), dtype=np.uint32)
    # hashfunc=int: the n-gram hashes are already integers.
    template = MinHash(num_perm=num_perm, seed=MINHASH_SEED, hashfunc=int)
    block = max(1024, _BLOCK_CELLS // num_perm)
    for index, text in enumerate(texts):
        hashes = _ngram_array(text)
        if len(hashes) > block:
            hashes = np.unique(hashes)
        minhash = template.copy()
        for start in range(0, len(hashes), block):
            minhash.update_batch(hashes[start : start + block].tolist())
        result[index] = minhash.hashvalues
    return result


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows per band, as datasketch's MinHashLSH would choose them."""
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    except ValueError:
        # Very high thresholds with few permutations leave datasketch with a
        # single band, which it refuses; two long bands still catch them.
        return 2, num_perm // 2
    return lsh.b, lsh.r


def band_keys(signature_rows: np.ndarray, bands: int, rows_per_band: int) -> np.ndarray:
    """A 64-bit key per (row, band): rows sharing a key are candidate duplicates.

    Returned with the lowest bit set, as :class:`HashIndex` requires, and salted
    by band so equal values in different bands never collide.
    """
    values = signature_rows.astype(np.uint64)
    multipliers = _band_multipliers(rows_per_band)
    keys = np.empty((len(values), bands), dtype=np.uint64)
    for band in range(bands):
        part = values[:, band * rows_per_band : (band + 1) * rows_per_band]
        salt = np.uint64((band + 1) * 0x9E3779B97F4A7C15 % 2**64)
        mixed = (part * multipliers).sum(axis=1, dtype=np.uint64) + salt
        keys[:, band] = _fmix64(mixed) | np.uint64(1)
    return keys


def similarity(signature: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity: the share of equal signature values."""
    return (others == signature).mean(axis=-1)


def _band_multipliers(count: int) -> np.ndarray:
    generator = np.random.default_rng(20240601)
    return generator.integers(1, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _fmix64(values: np.ndarray) -> np.ndarray:
    # MurmurHash3's finaliser: spreads the bits so slots can use any of them.
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xC4CEB9FE1A85EC53)
    return values ^ (values >> np.uint64(33))

"""Deterministic alpaca JSONL for the benchmarks: mixed lengths, English and Chinese, flaws mixed in.

    .venv/bin/python bench/make_data.py --size-mb 1024           # bench/out/alpaca-1024mb.jsonl
    .venv/bin/python bench/make_data.py --size-mb 1024 --clean   # bench/out/alpaca-1024mb-clean.jsonl

Rows are ``{"instruction", "input", "output"}`` built from pools of generated sentences (pseudo-English
words, or common-range CJK characters; about 30% of rows Chinese). Output lengths are log-normal, from one
sentence to about 80. Of the rows written: about 5% repeat an earlier row byte for byte, about 2% repeat
one with a small edit (a word inserted into the output: a near duplicate), and about 0.5% are bad lines
(invalid JSON, not an object, empty output, wrong types). ``--clean`` leaves out the bad lines only, so
tools that stop at the first bad line can be timed on the same kind of data.

The same seed and size always give the same bytes. A ``.manifest.json`` next to the file records what
was planted, so the benchmarks can check the rows they find. Files are reused when the manifest
matches; ``--force`` rebuilds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import orjson

OUT = Path(__file__).resolve().parent / "out"
GENERATOR_VERSION = 1
BAD_KINDS = ("invalid_json", "not_object", "empty_output", "wrong_type")
_FLUSH_BYTES = 8 * 1024 * 1024
_SYLLABLES = "ka lo mi tra ven sol dre pa ni ther qua zen bel rim cho fa lu gri san to ex".split()
_COMMON = "the of and to in is that for it as with be on not this by are from or an which can you".split()
_EDITS = ("really", "also", "indeed", "still", "however", "其实", "也")


class Corpus:
    """Pools of sentences to build row texts from (all from one seeded RNG)."""

    def __init__(self, rng: random.Random, pool_size: int = 40_000) -> None:
        words = [
            rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES) + rng.choice(("", "s", "ed", "ing", "er"))
            for _ in range(6000)
        ] + _COMMON * 40
        cjk = [chr(0x4E00 + rng.randrange(0x1E00)) for _ in range(2500)]
        self.english = [self._english(rng, words) for _ in range(pool_size)]
        self.chinese = [
            "".join(rng.choices(cjk, k=rng.randint(8, 30))) + rng.choice("。！？，") for _ in range(pool_size)
        ]

    @staticmethod
    def _english(rng: random.Random, words: list[str]) -> str:
        sentence = " ".join(rng.choices(words, k=rng.randint(5, 20)))
        return sentence[0].upper() + sentence[1:] + rng.choice("..?!")

    def text(self, rng: random.Random, chinese: bool, sentences: int) -> str:
        if chinese:
            return "".join(rng.choices(self.chinese, k=sentences))
        return " ".join(rng.choices(self.english, k=sentences))


def data_path(size_mb: int, clean: bool) -> Path:
    return OUT / f"alpaca-{size_mb}mb{'-clean' if clean else ''}.jsonl"


def ensure(size_mb: int, *, clean: bool, seed: int = 20240601, force: bool = False) -> Path:
    """The data file for these settings, generated unless an identical one exists."""
    path = data_path(size_mb, clean)
    manifest_path = path.with_suffix(".manifest.json")
    wanted = {"size_mb": size_mb, "clean": clean, "seed": seed, "version": GENERATOR_VERSION}
    if not force and path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {key: manifest.get(key) for key in wanted} == wanted and manifest["bytes"] == path.stat().st_size:
            return path
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    counts = generate(path, size_mb * 1024 * 1024, clean=clean, seed=seed)
    manifest = {
        **wanted,
        **counts,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 1),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def generate(path: Path, target_bytes: int, *, clean: bool, seed: int) -> dict:
    """Write rows until ``target_bytes`` is reached; returns what was planted."""
    rng = random.Random(seed)
    corpus = Corpus(rng)
    recent: list[tuple[dict, bytes]] = []  # earlier good rows, to duplicate
    counts = {"lines": 0, "good_unique": 0, "exact_duplicates": 0, "near_duplicates": 0}
    bad = dict.fromkeys(BAD_KINDS, 0)
    chunk: list[bytes] = []
    chunk_bytes = written = 0
    temp = path.with_name(path.name + ".part")
    with open(temp, "wb") as handle:
        while written + chunk_bytes < target_bytes:
            roll = rng.random()
            if roll < 0.05 and recent:
                line = rng.choice(recent)[1]
                counts["exact_duplicates"] += 1
            elif roll < 0.07 and recent:
                line = orjson.dumps(_near_copy(rng, rng.choice(recent)[0]))
                counts["near_duplicates"] += 1
            elif roll < 0.075 and not clean:
                kind = rng.choice(BAD_KINDS)
                line = _bad_line(rng, kind, _row(rng, corpus))
                bad[kind] += 1
            else:
                row = _row(rng, corpus)
                line = orjson.dumps(row)
                counts["good_unique"] += 1
                if len(recent) < 4096:
                    recent.append((row, line))
                else:
                    recent[rng.randrange(4096)] = (row, line)
            chunk.append(line)
            chunk_bytes += len(line) + 1
            counts["lines"] += 1
            if chunk_bytes >= _FLUSH_BYTES:
                handle.write(b"\n".join(chunk) + b"\n")
                written += chunk_bytes
                chunk, chunk_bytes = [], 0
        if chunk:
            handle.write(b"\n".join(chunk) + b"\n")
    os.replace(temp, path)
    return {**counts, "bad_lines": sum(bad.values()), "bad": bad}


def _row(rng: random.Random, corpus: Corpus) -> dict:
    chinese = rng.random() < 0.3
    output_sentences = min(80, int(rng.lognormvariate(1.6, 0.9)) + 1)
    return {
        "instruction": corpus.text(rng, chinese, rng.randint(1, 2)),
        "input": corpus.text(rng, chinese, rng.randint(1, 4)) if rng.random() < 0.4 else "",
        "output": corpus.text(rng, chinese, output_sentences),
    }


def _near_copy(rng: random.Random, row: dict) -> dict:
    """The row with one word inserted into its output: a near duplicate, not an exact one."""
    output = row["output"]
    position = rng.randrange(len(output) + 1)
    return {**row, "output": f"{output[:position]} {rng.choice(_EDITS)} {output[position:]}"}


def _bad_line(rng: random.Random, kind: str, row: dict) -> bytes:
    if kind == "invalid_json":
        line = orjson.dumps(row)
        return rng.choice((line[: len(line) // 2], line[:-1] + b",}", line.replace(b'":', b"'=", 1)))
    if kind == "not_object":
        return orjson.dumps(rng.choice(([row["instruction"], row["output"]], row["output"], 42)))
    if kind == "empty_output":
        return orjson.dumps({**row, "output": rng.choice(("", "   ", None))})
    field = rng.choice(("instruction", "output"))
    return orjson.dumps({**row, field: rng.choice((42, [row[field]], {"text": row[field]}, True))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size in MiB (default 1024 = 1 GiB)")
    parser.add_argument("--clean", action="store_true", help="no bad lines")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    args = parser.parse_args()
    path = ensure(args.size_mb, clean=args.clean, seed=args.seed, force=args.force)
    print(path)
    print(path.with_suffix(".manifest.json").read_text(), end="")


if __name__ == "__main__":
    main()

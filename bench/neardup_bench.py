"""Near-duplicate removal of a million short canonical rows through the cleaning core; wall time, peak RSS.

    .venv/bin/python bench/neardup_bench.py --rows 1000000       # about 2-4 minutes on 2 cores

Makes (or reuses) bench/out/canonical-<rows>.jsonl: two-message conversations (user, assistant) of a
few English or Chinese sentences, 150-600 characters, seeded; 3% of rows repeat an earlier row exactly and
5% repeat one with one word inserted (a near duplicate). Then runs ``clean_file`` twice, each in a fresh
process (see _measure.py), with every other rule off (no garbled, ads, length, token or PII rule):

* exact: only ``exact_dedup`` (the reference: hashing, no MinHash);
* near: only ``near_dedup`` (MinHash + LSH at the default threshold and permutations); it also removes
  the exact copies, which are near duplicates at similarity 1.

Kept rows are written to bench/out/ and deleted after the run. Wall and CPU seconds are the work alone;
the target is the near run within 3 minutes on 2 cores. MB means MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
from _measure import MB, REPO, machine, run_child, run_work, table
from make_data import OUT, Corpus

SEED = 20240602
MODES = ("exact", "near")
TARGET_S = 180


def ensure_rows(count: int) -> tuple[Path, dict]:
    """The canonical file and its manifest, generated unless an identical one exists."""
    path = OUT / f"canonical-{count}.jsonl"
    manifest_path = path.with_suffix(".manifest.json")
    if path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("seed") == SEED and manifest.get("bytes") == path.stat().st_size:
            return path, manifest
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    corpus = Corpus(rng)
    planted = {"exact_duplicates": 0, "near_duplicates": 0}
    recent: list[list] = []
    temp = path.with_name(path.name + ".part")
    with open(temp, "wb") as handle:
        chunk = []
        for line in range(1, count + 1):
            roll = rng.random()
            if roll < 0.03 and recent:
                messages = rng.choice(recent)
                planted["exact_duplicates"] += 1
            elif roll < 0.08 and recent:
                user, assistant = rng.choice(recent)
                words = assistant["content"].split(" ")
                words.insert(rng.randrange(len(words) + 1), rng.choice(("really", "also", "其实")))
                messages = [user, {"role": "assistant", "content": " ".join(words)}]
                planted["near_duplicates"] += 1
            else:
                chinese = rng.random() < 0.3
                messages = [
                    {"role": "user", "content": corpus.text(rng, chinese, rng.randint(1, 2))},
                    {"role": "assistant", "content": corpus.text(rng, chinese, rng.randint(2, 5))},
                ]
                if len(recent) < 4096:
                    recent.append(messages)
                else:
                    recent[rng.randrange(4096)] = messages
            chunk.append(orjson.dumps({"messages": messages, "source_line": line}))
            if len(chunk) == 65536 or line == count:
                handle.write(b"\n".join(chunk) + b"\n")
                chunk = []
    os.replace(temp, path)
    manifest = {"seed": SEED, "rows": count, **planted, "bytes": path.stat().st_size}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path, manifest


def prepare(mode: str, path: Path, scratch: Path) -> Callable[[dict], None]:
    sys.path.insert(0, str(REPO))
    from datasets_app.core.cleaning import CleaningRules, clean_file

    rules = CleaningRules(
        garbled=False,
        ads=False,
        min_chars=0,
        max_chars=None,
        exact_dedup=mode == "exact",
        near_dedup=mode == "near",
        length_mode="off",
        pii_mask=False,
    )

    def work(found: dict) -> None:
        result = clean_file(path, rules=rules, out_path=scratch / "kept.jsonl")
        outcome = next(outcome for outcome in result.outcomes if outcome.rule == f"{mode}_dedup")
        found.update(rows_in=result.rows_in, rows_out=result.rows_out, removed=outcome.removed)
        found["rules"] = rules.to_dict()

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-exact", action="store_true", help="skip the exact-dedup reference run")
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_work(prepare(args.worker, args.input, args.scratch))
        return
    print(f"Machine: {machine()}\n", flush=True)
    path, manifest = ensure_rows(args.rows)
    rows, results = [], []
    for mode in MODES[1:] if args.skip_exact else MODES:
        scratch = OUT / f"neardup-{mode}-{os.getpid()}"
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            worker_args = ["--worker", mode, "--input", str(path), "--scratch", str(scratch)]
            measured = run_child(__file__, worker_args, timeout_s=args.timeout_s)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result = {"mode": mode, "manifest": manifest} | measured.as_dict()
        results.append(result)
        wall = result.get("wall_s", 0.0)
        rows.append(
            [
                f"{mode}_dedup only",
                "ok" if measured.ok else f"FAILED: {measured.error}",
                f"{result.get('rows_in', 0):,} → {result.get('rows_out', 0):,}",
                f"{result.get('removed', 0):,}",
                f"{wall:.1f}",
                f"{result.get('cpu_s', 0.0):.1f}",
                f"{result.get('rows_in', 0) / wall:,.0f}" if wall else "–",
                f"{result['peak_rss_mb']:.0f}",
                f"{result['load'][0]:.2f} → {result['load'][1]:.2f}",
            ]
        )
    with open(OUT / "neardup.jsonl", "a") as handle:
        for result in results:
            handle.write(json.dumps(result) + "\n")
    planted = manifest["exact_duplicates"] + manifest["near_duplicates"]
    print(
        f"Input: {path.name}, {manifest['rows']:,} rows, {manifest['bytes'] / MB:.0f} MB; planted "
        f"{manifest['exact_duplicates']:,} exact and {manifest['near_duplicates']:,} near duplicates "
        f"({planted:,} in all)\n"
    )
    headers = "run|outcome|rows in → out|removed|wall s|CPU s|rows/s|peak RSS MB|load (1 min)".split("|")
    print(table(headers, rows) + "\n")
    near = next((r for r in results if r["mode"] == "near" and r["ok"]), None)
    if near is None:
        print("- near-duplicate removal of the rows within 3 minutes: did not complete")
    else:
        verdict = "met" if near["wall_s"] <= TARGET_S else "NOT met"
        print(
            f"- near-duplicate removal of {near['rows_in']:,} rows within {TARGET_S} s: "
            f"{near['wall_s']:.0f} s ({verdict}, {near['wall_s'] / TARGET_S:.0%} of the budget)"
        )


if __name__ == "__main__":
    main()

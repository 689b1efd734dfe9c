"""Validation throughput and peak RSS: ours against ``datasets`` and pandas, side by side in one run.

    .venv/bin/python bench/validate_bench.py --size-mb 1024   # about 2 min, plus 30 s to make the data once

Makes (or reuses) two files with make_data.py: one with bad lines mixed in, and a clean one of the same
size without them. Each contender runs on each file in a fresh process of its own (see _measure.py):

* ours: ``validate_file`` writing the canonical rows and the errors file under bench/out/, checking
  and normalising every line;
* datasets: ``load_dataset("json", data_files=..., split="train")`` then a batched ``.filter`` keeping
  rows whose ``output`` is non-blank, with a fresh ``cache_dir`` under bench/out/ that is deleted after
  the run; ``keep_in_memory=False`` (the library's default: Arrow files written to the cache and
  memory-mapped, so mapped pages count in RSS), ``--keep-in-memory`` to switch;
* pandas: ``read_json(lines=True)`` then ``drop_duplicates()``.

Wall and CPU seconds are the work alone (interpreter start and imports excluded); CPU counts every
thread, so MB per CPU-second is throughput per core. Peak RSS is the larger of the child's VmHWM
(the kernel's high-water mark) and psutil polling every 50 ms; "RSS after imports" is where the work
started from.
MB means MiB throughout. Prints a markdown table and appends raw results to bench/out/validate.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from _measure import MB, REPO, machine, run_child, run_work, table
from make_data import OUT, ensure

CONTENDERS = ("ours", "datasets", "pandas")


def prepare_ours(path: Path, scratch: Path, _keep_in_memory: bool) -> Callable[[dict], None]:
    sys.path.insert(0, str(REPO))
    from datasets_app.core.validate import validate_file

    def work(found: dict) -> None:
        report = validate_file(
            path, canonical_out=scratch / "rows.jsonl", errors_out=scratch / "errors.jsonl"
        )
        found.update(rows_in=report.rows, rows_out=report.valid_rows, counts=report.counts)

    return work


def prepare_datasets(path: Path, scratch: Path, keep_in_memory: bool) -> Callable[[dict], None]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()

    def work(found: dict) -> None:
        loaded = datasets.load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(scratch), keep_in_memory=keep_in_memory
        )
        found["rows_in"] = len(loaded)
        kept = loaded.filter(
            _non_blank, input_columns="output", batched=True, batch_size=10_000, keep_in_memory=keep_in_memory
        )
        found["rows_out"] = len(kept)

    return work


def _non_blank(outputs: list) -> list[bool]:
    return [type(output) is str and output.strip() != "" for output in outputs]


def prepare_pandas(path: Path, _scratch: Path, _keep_in_memory: bool) -> Callable[[dict], None]:
    import pandas

    def work(found: dict) -> None:
        frame = pandas.read_json(path, lines=True)
        found["rows_in"] = len(frame)
        found["rows_out"] = len(frame.drop_duplicates())

    return work


PREPARE = {"ours": prepare_ours, "datasets": prepare_datasets, "pandas": prepare_pandas}


def run_all(args: argparse.Namespace) -> list[dict]:
    files = {}
    for clean in (False, True):
        path = ensure(args.size_mb, clean=clean)
        manifest = json.loads(path.with_suffix(".manifest.json").read_text())
        files["clean" if clean else "with bad lines"] = (path, manifest)
    contenders = [name for name in CONTENDERS if not getattr(args, f"skip_{name}")]
    results = []
    for label, (path, manifest) in files.items():
        for name in contenders:
            scratch = OUT / f"validate-{name}-{os.getpid()}"
            scratch.mkdir(parents=True, exist_ok=True)
            worker_args = ["--worker", name, "--input", str(path), "--scratch", str(scratch)]
            if args.keep_in_memory:
                worker_args.append("--keep-in-memory")
            try:
                measured = run_child(__file__, worker_args, timeout_s=args.timeout_s)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            results.append(
                {"contender": name, "file": label, "bytes": manifest["bytes"], "manifest": manifest}
                | measured.as_dict()
            )
            print(f"  {name} on {label}: {'ok' if measured.ok else measured.error}", file=sys.stderr)
    with open(OUT / "validate.jsonl", "a") as handle:
        for result in results:
            handle.write(json.dumps(result) + "\n")
    return results


HEADERS = (
    "contender|file|outcome|rows in → out|wall s|MB/s|CPU s|MB per CPU-s|peak RSS MB|RSS after imports MB|"
    "load (1 min)"
).split("|")


def render(results: list[dict]) -> str:
    rows = []
    for result in results:
        megabytes = result["bytes"] / MB
        wall, cpu = result.get("wall_s"), result.get("cpu_s")
        outcome = "ok" if result["ok"] else f"FAILED: {result['error']}"
        if result["ok"] and result["contender"] == "ours":
            expected = result["manifest"]["lines"] - result["manifest"].get("bad_lines", 0)
            outcome += " (rows as planted)" if result["rows_out"] == expected else f" (expected {expected:,})"
        rows.append(
            [
                result["contender"],
                result["file"],
                outcome,
                f"{result.get('rows_in') or 0:,} → {result.get('rows_out', 0):,}" if result["ok"] else "–",
                f"{wall:.2f}" if wall else "–",
                f"{megabytes / wall:.0f}" if result["ok"] else "–",
                f"{cpu:.2f}" if cpu else "–",
                f"{megabytes / cpu:.0f}" if result["ok"] else "–",
                f"{result['peak_rss_mb']:.0f}",
                f"{result.get('base_rss_mb', 0):.0f}",
                f"{result['load'][0]:.2f} → {result['load'][1]:.2f}",
            ]
        )
    return table(HEADERS, rows) + "\n\n" + "\n".join(verdicts(results))


def verdicts(results: list[dict]) -> list[str]:
    found = {(r["contender"], r["file"]): r for r in results if r["ok"]}
    ours = found.get(("ours", "with bad lines")) or found.get(("ours", "clean"))
    if ours is None:
        return ["Ours was skipped or did not complete: no verdicts."]

    def speed(result: dict) -> float:
        return result["bytes"] / MB / result["wall_s"]

    per_core = ours["bytes"] / MB / ours["cpu_s"]
    lines = [
        f"- ≥ 50 MB/s per core while checking every line: {per_core:.0f} MB per CPU-second "
        f"({'met' if per_core >= 50 else 'NOT met'}, {per_core / 50:.1f}×)",
        f"- peak RSS < 300 MB: {ours['peak_rss_mb']:.0f} MB "
        f"({'met' if ours['peak_rss_mb'] < 300 else 'NOT met'})",
    ]
    ours_clean = found.get(("ours", "clean"), ours)
    for rival, rule in (
        ("pandas", "faster than pandas"),
        ("datasets", "at least half the speed of datasets"),
    ):
        other = found.get((rival, "clean"))
        if other is None:
            lines.append(f"- {rule}: {rival} did not complete on the clean file, no comparison")
            continue
        ratio = speed(ours_clean) / speed(other)
        met = ratio > 1 if rival == "pandas" else ratio >= 0.5
        lines.append(
            f"- {rule} (clean file): ours {speed(ours_clean):.0f} MB/s vs {speed(other):.0f} MB/s, "
            f"{ratio:.2f}× ({'met' if met else 'NOT met'})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of each file in MiB (default 1 GiB)")
    for name in CONTENDERS:
        parser.add_argument(f"--skip-{name}", action="store_true")
    parser.add_argument("--keep-in-memory", action="store_true", help="datasets: keep_in_memory=True")
    parser.add_argument("--timeout-s", type=float, default=1800, help="per contender and file")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_work(PREPARE[args.worker](args.input, args.scratch, args.keep_in_memory))
        return
    print(f"Machine: {machine()}\n", flush=True)
    print(render(run_all(args)))


if __name__ == "__main__":
    main()

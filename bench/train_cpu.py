"""LoRA training throughput on the CPU: the seed's SFTTrainer script against our training path.

    .venv/bin/python bench/train_cpu.py                 # all runs, about 6-8 minutes on 2 cores
    .venv/bin/python bench/train_cpu.py --only ours --steps 4

Data: 500 chat rows of mixed lengths in the canonical JSONL format (deterministic, seed 20261128;
bench/out/train-cpu/chat-500.jsonl), some with a system prompt, some with two exchanges. Model: the demo
model (SmolLM2-135M-Instruct, .data/test-cache/demo-model, made by ensure_demo_model if missing).
LoRA r=64, alpha 16, dropout 0.1 on q/k/v/o; batch 1, gradient accumulation 8, learning rate 2e-4,
``--steps`` optimizer steps (8 by default: 64 rows), max length 2048 (no row is cut).

Each run is a process of its own (run one after the other, never side by side):

- ``seed``: section 3.2 of the seed guide, adapted to trl 1.16 as little as possible: the model is loaded
  as written (bf16 weights, ``device_map="auto"``), ``TrainingArguments`` as written with ``fp16`` off
  (a CPU) and ``use_cpu`` on, converted to ``SFTConfig`` the way SFTTrainer itself converts them, plus
  ``max_length=2048`` (``max_seq_length`` moved there); ``processing_class`` for ``tokenizer``; the
  guide's ``DataCollatorForSeq2Seq``. Conversational rows, so trl renders the chat template and takes
  the loss on every token. The TrainingArguments defaults carry over: no gradient checkpointing, no
  autocast.
- ``seed_trl_defaults``: the same with ``SFTConfig`` built directly, i.e. trl's defaults: gradient
  checkpointing on, bf16 autocast on.
- ``ours``: ``training_app.ml.train.train(...)`` with ``Recipe(max_steps=...)`` (the recipe defaults are the
  seed's LoRA settings); loss on assistant tokens only; every event kept in a list as JSON. Precision
  "auto": bf16 on a CPU with AVX512-BF16 or AMX (with attention in fp32 and the cheaper LoRA dropout of
  ``lathe_common.cpu`` and ``training_app.ml.patches.peft``), fp32 on other CPUs.
- ``ours_fp32``: ``ours`` with ``Recipe(precision="fp32")``, what "auto" picked on every CPU before
  ``lathe_common.cpu`` (the cheaper LoRA dropout still applies).
- ``ours_all_positions``: ``ours`` with ``score_labelled_positions_only`` turned into a no-op, i.e. trl's
  fused LM head projecting every position on a CPU, as before that lever went in.
- ``ours_events``: ``ours`` with the job runner's real event sink (``training_app.runner._EventSink``
  and ``JobReporter``: SQLite in a fresh data folder, Redis DB 13 with the ``bench-`` namespace, flushed
  afterwards), to price the event path.

Throughput is real (non-padding) tokens over wall time from the first optimizer step's start to the
end of training, counted by trl's own token counter (the attention mask's sum, prompt tokens included),
so the seed and ours are measured the same way; "steady" leaves the first optimizer step out. The time
spent inside our EventCallback (which calls the event sink) and in ``Trainer.log`` is summed per step.
Results are appended to bench/out/train_cpu.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from _measure import REPO, child_report, machine, run_child, table

sys.path.insert(0, str(REPO))  # training_app.ml, models_app, webapp
OUT = REPO / "bench" / "out" / "train-cpu"
DEMO_MODEL = REPO / ".data" / "test-cache" / "demo-model"
REDIS_URL = "redis://127.0.0.1:6379/13"
MODES = ("seed", "seed_trl_defaults", "ours_fp32", "ours", "ours_events", "ours_all_positions")
SEED_TRAINING_ARGS = dict(  # section 3.2, step 4, with fp16 off and the CPU asked for
    per_device_train_batch_size=1,
    gradient_accumulation_steps=8,
    learning_rate=2e-4,
    num_train_epochs=3,
    save_steps=100,
    logging_steps=10,
    fp16=False,
    optim="adamw_torch",
    report_to="none",
    use_cpu=True,
)
WORDS = (
    "the model data train loss token answer question system user assistant learning rate batch step "
    "gradient memory layer weight adapter matrix rank value vector attention head sequence length "
    "example result report file line format check clean version dataset upload worker queue job event "
    "a an of to in for on with by from at as is are was be can will should would may must not and or "
    "but if then so because when where which what how why who this that these those it they we you "
    "make take give find keep start stop run build read write send show tell ask use try help need "
    "small large fast slow new old good bad first last next early late simple clear short long high "
    "low many few more less most each every other same different important possible useful common "
    "time day week year hour minute second number part case point way place group problem reason idea "
    "城市 数据 模型 训练 问题 答案 学习 方法"
).split()


# --- data ------------------------------------------------------------------------------------------


def sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(max(1, words)))
    return text[0].upper() + text[1:] + "."


def paragraph(rng: random.Random, words: int) -> str:
    parts, left = [], words
    while left > 0:
        size = min(left, rng.randint(6, 22))
        parts.append(sentence(rng, size))
        left -= size
    return " ".join(parts)


def conversation(rng: random.Random, line: int) -> dict:
    """One canonical row: prompt and reply lengths log-normal, so most are short and a few long."""
    messages = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": paragraph(rng, rng.randint(8, 40))})
    for _ in range(2 if rng.random() < 0.15 else 1):
        prompt_words = min(400, int(rng.lognormvariate(3.2, 0.8)))
        reply_words = min(600, int(rng.lognormvariate(3.9, 0.9)))
        messages.append({"role": "user", "content": paragraph(rng, prompt_words)})
        messages.append({"role": "assistant", "content": paragraph(rng, reply_words)})
    return {"messages": messages, "source_line": line}


def ensure_data(rows: int) -> Path:
    path = OUT / f"chat-{rows}.jsonl"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        rng = random.Random(20261128)
        lines = [json.dumps(conversation(rng, line), ensure_ascii=False) for line in range(1, rows + 1)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def data_stats(path: Path) -> dict:
    """Token lengths and the assistant's share, as our tokenizer lays the rows out."""
    from training_app.ml.components import load_tokenizer
    from training_app.ml.data import ConversationTokenizer

    encode = ConversationTokenizer(load_tokenizer(DEMO_MODEL), 2048)
    lengths, assistant = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        ids, mask = encode(json.loads(line)["messages"])
        lengths.append(len(ids))
        assistant += sum(mask)
    lengths.sort()
    return {
        "rows": len(lengths),
        "tokens": sum(lengths),
        "mean": round(sum(lengths) / len(lengths)),
        "median": lengths[len(lengths) // 2],
        "p90": lengths[int(0.9 * len(lengths))],
        "max": lengths[-1],
        "min": lengths[0],
        "assistant_share": round(assistant / sum(lengths), 3),
        "mask_method": encode.method,
    }


# --- measuring inside a run ------------------------------------------------------------------------


def step_timer(trainer_ref: list):
    """A callback that stamps each optimizer step's start and reads trl's real-token counter there."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def mark(self) -> None:
            self.marks.append((time.perf_counter(), int(trainer_ref[0]._total_train_tokens)))

        def on_step_begin(self, args, state, control, **kwargs):
            self.mark()

        def on_train_end(self, args, state, control, **kwargs):
            self.mark()

    return StepTimer()


def throughput(marks: list[tuple[float, int]]) -> dict:
    times = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    tokens = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)]
    return {
        "steps": len(times),
        "real_tokens": sum(tokens),
        "train_s": round(sum(times), 2),
        "tokens_per_s": round(sum(tokens) / sum(times), 1),
        "steady_tokens_per_s": round(sum(tokens[1:]) / sum(times[1:]), 1) if len(times) > 1 else None,
        "step_s": [round(t, 2) for t in times],
        "step_tokens": tokens,
    }


class Timed:
    """Wraps methods of a class or object and sums the wall time spent in them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        setattr(owner, name, timed)


# --- the runs --------------------------------------------------------------------------------------


def run_seed(found: dict, data: Path, steps: int, output: Path, trl_defaults: bool) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    train_dataset = Dataset.from_list([{"messages": row["messages"]} for row in rows])
    # 1-3 as in the guide
    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL, use_fast=False)
    model = AutoModelForCausalLM.from_pretrained(DEMO_MODEL, dtype=torch.bfloat16, device_map="auto")
    lora_config = LoraConfig(
        r=64,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        lora_dropout=0.1,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora_config)
    settings = dict(SEED_TRAINING_ARGS, output_dir=str(output), max_steps=steps)
    if trl_defaults:
        args = SFTConfig(**settings, max_length=2048)
    else:  # what SFTTrainer does with a TrainingArguments, plus the max_length the guide gives
        dict_args = TrainingArguments(**settings).to_dict()
        dict_args["hub_token"] = None
        args = SFTConfig(**dict_args, max_length=2048)
    found["config"] = {
        "gradient_checkpointing": args.gradient_checkpointing,
        "bf16_autocast": args.bf16,
        "weights": str(next(model.parameters()).dtype),
        "loss_on": "assistant only" if args.assistant_only_loss else "every token",
    }
    holder: list = []
    timer = step_timer(holder)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)
    holder.append(trainer)
    found["torch_threads"] = torch.get_num_threads()
    output = trainer.train()
    found["train_loss"] = output.training_loss
    found.update(throughput(timer.marks))


def run_ours(found: dict, data: Path, steps: int, output: Path, mode: str) -> None:
    import torch

    from training_app.ml import callbacks, samples
    from training_app.ml import train as train_module
    from training_app.ml.recipe import Recipe

    real_events = mode == "ours_events"
    recipe = Recipe(max_steps=steps)
    if mode == "ours_all_positions":
        train_module.score_labelled_positions_only = lambda: None
    if mode == "ours_fp32":
        recipe = recipe.replace(precision="fp32")

    callback_time, log_time, holder = Timed(), Timed(), []
    for name in ("on_train_begin", "on_step_end", "on_log", "on_evaluate", "on_save"):
        callback_time.wrap(callbacks.EventCallback, name)
    for name in ("on_evaluate", "on_step_end", "on_log"):
        if name in vars(samples.SampleCallback):
            callback_time.wrap(samples.SampleCallback, name)
    timer = step_timer(holder)
    build_trainer = train_module._build_trainer

    def build_and_measure(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        holder.append(trainer)
        trainer.add_callback(timer)
        log_time.wrap(trainer, "log")
        return trainer

    train_module._build_trainer = build_and_measure
    events: list[dict] = []
    if real_events:
        sink, should_stop, job_id = event_sink()
    else:
        sink, should_stop = events.append, (lambda: False)

    def on_event(event: dict) -> None:
        event = json.loads(json.dumps(event, allow_nan=False))  # as the job's transport carries it
        events.append(event)
        if real_events:
            sink(event)

    result = train_module.train(
        base_model_dir=DEMO_MODEL,
        train_path=data,
        validation_path=None,
        output_dir=output,
        recipe=recipe,
        on_event=on_event,
        should_stop=should_stop,
    )
    measured = throughput(timer.marks)
    found.update(measured)
    found["torch_threads"] = torch.get_num_threads()
    found["train_loss"] = result.train_loss
    found["config"] = {"log": [e["message"] for e in events if e["type"] == "log"]}
    metrics = [e for e in events if e["type"] == "metrics"]
    found["events"] = len(events)
    found["metrics_tokens_per_s"] = [m["tokens_per_second"] for m in metrics]
    found["callback_s"] = round(callback_time.seconds, 4)
    found["callback_calls"] = callback_time.calls
    found["trainer_log_s"] = round(log_time.seconds, 4)  # includes on_log, so the callback's share too
    found["callback_share"] = round(callback_time.seconds / measured["train_s"], 5)
    found["trainer_log_share"] = round(log_time.seconds / measured["train_s"], 5)
    if real_events:
        from jobs.models import JobEvent

        found["stored_events"] = JobEvent.objects.filter(job_id=job_id).count()


def event_sink():
    """The job runner's sink for a RUNNING job in a fresh site (Django set up in this process)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from jobs.models import Job
    from jobs.reporter import JobReporter
    from jobs.states import JobKind, JobState
    from training_app.runner import _EventSink

    user = get_user_model().objects.create_user(username="bench", password=None)
    job = Job.objects.create(owner=user, kind=JobKind.TRAIN, queue="bench-cpu", state=JobState.RUNNING)
    sink = _EventSink(job, JobReporter(job.pk))
    return sink, sink.should_stop, job.pk


def worker(mode: str, data: Path, steps: int, output: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    found: dict = {"mode": mode}
    started = time.perf_counter()
    try:
        if mode.startswith("seed"):
            run_seed(found, data, steps, output, trl_defaults=mode == "seed_trl_defaults")
        else:
            run_ours(found, data, steps, output, mode)
    except Exception as error:  # noqa: BLE001 - the failure is the result
        found["error"] = f"{type(error).__name__}: {str(error)[:300]}"
    found["run_s"] = round(time.perf_counter() - started, 1)
    child_report(**found)


# --- the parent ------------------------------------------------------------------------------------


def site_for_events() -> dict:
    """A migrated fresh data folder for the ours_events run; returns the child's environment."""
    import subprocess

    site = OUT / f"site-{time.strftime('%Y%m%d-%H%M%S')}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "LATHE_DATA_DIR": str(site),
        "REDIS_URL": REDIS_URL,
        "LATHE_REDIS_NAMESPACE": "bench-",
        "LATHE_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)  # SQLite in the fresh folder
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run (8 rows each)")
    parser.add_argument("--only", default=",".join(MODES), help="comma-separated runs, in this order")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.data, args.steps, args.output)

    print(f"Machine: {machine()}\n", flush=True)
    if not (DEMO_MODEL / "config.json").exists():
        from models_app.ml.demo_model import ensure_demo_model

        ensure_demo_model(DEMO_MODEL)
    data = ensure_data(args.rows)
    stats = data_stats(data)
    print(f"Data {data.name}: {stats}\n", flush=True)
    results = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for mode in args.only.split(","):
        env = site_for_events() if mode == "ours_events" else None
        output = OUT / f"run-{stamp}-{mode}"
        command = ["--worker", mode, "--data", str(data), "--steps", str(args.steps), "--output", str(output)]
        measured = run_child(__file__, command, timeout_s=600, env=env)
        if mode == "ours_events":
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
        record = {**measured.as_dict(), "data": stats, "machine": machine(), "when": stamp}
        results.append(record)
        with open(REPO / "bench" / "out" / "train_cpu.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(
            f"{mode}: {record.get('tokens_per_s')} tok/s (steady {record.get('steady_tokens_per_s')}), "
            f"{record.get('error') or 'ok'}, load {record['load'][0]:.2f} → {record['load'][1]:.2f}",
            flush=True,
        )
    print_table(results)


def print_table(results: list[dict]) -> None:
    def rate(mode: str) -> float | None:
        return next((r["tokens_per_s"] for r in results if r["mode"] == mode and r.get("tokens_per_s")), None)

    seeds = rate("seed"), rate("seed_trl_defaults")
    rows = []
    for r in results:
        if not r.get("tokens_per_s"):
            rows.append([r["mode"], r.get("error"), *["–"] * 9])
            continue
        ratios = [f"{r['tokens_per_s'] / seed:.2f}" if seed else "–" for seed in seeds]
        overhead = f"{100 * r['callback_share']:.3f}%" if "callback_share" in r else "–"
        rows.append(
            [
                r["mode"],
                r["steps"],
                r["real_tokens"],
                r["train_s"],
                r["tokens_per_s"],
                r["steady_tokens_per_s"],
                *ratios,
                overhead,
                f"{r['peak_rss_mb']:.0f}",
                f"{r['load'][0]:.2f} → {r['load'][1]:.2f}",
            ]
        )
    headers = (
        "run|steps|real tokens|train s|tok/s|steady tok/s|x seed|x seed (trl defaults)|callbacks"
        "|peak RSS MB|load"
    )
    print("\n" + table(headers.split("|"), rows))


if __name__ == "__main__":
    main()

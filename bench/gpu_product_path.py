#!/usr/bin/env python3
"""The product's own training path, timed on a GPU against the seed's settings as trl runs them by default.

    bash bench/gpu_check.sh                                   # on the GPU machine: wheels, then this
    PYTHONPATH=. python3 bench/gpu_product_path.py --budget-seconds 420
    .venv/bin/python bench/gpu_product_path.py --tiny         # the same code on a CPU: a 2-layer toy

Model: Qwen2.5-7B's shape (Qwen2Config: hidden 3584, intermediate 18944, 28 layers, 28 heads, 4 KV heads,
vocab 152064, untied) with random bf16 weights, saved to a temporary folder with a tokenizer: the demo
model's (.data/test-cache/demo-model) with --tiny where this checkout has it, else a Qwen2 byte-level
BPE tokenizer trained here with the `tokenizers` library and given a Qwen-style chat template with
{% generation %} markers (the GPU machine has no .data folder and no network). Data: synthetic
user/assistant conversations of 256 to 2,000 tokens, one JSONL file that every run reads.

Runs, each a JSON line on stdout and, when $OUT is set, in $OUT/gpu_check.jsonl:
- product_1gpu: `training_app.ml.train.train()` with the default Recipe (the seed guide's LoRA r=64,
  alpha=16, dropout 0.1 on q/k/v/o, lr 2e-4, batch 1 x accumulation 8, 2,048 tokens); precision and
  gradient checkpointing as the product resolves them ("auto"; the memory estimate's verdict for a 7B
  LoRA at 2,048 tokens on an 80 GB card is "fits without checkpointing", passed as
  checkpointing_needed=False; --product-checkpointing on forces it);
- product_plain_1gpu: the same with the recipe's speed-ups off (micro_batching, liger_kernels and
  fused_optimizer "off"): what they buy, and the loss of the same steps without them;
- seed_trl_1gpu: a plain trl SFTTrainer script (not the product's code) with the seed's settings: the
  same LoRA, batch 1 x accumulation 8, gradient checkpointing on, lr 2e-4, bf16, max_length 2,048, the
  conversations as a "messages" dataset, everything else trl's and transformers' defaults;
- product_2gpu: the product path through `run_distributed(processes=2)` (DDP, NCCL), only where
  torch.cuda.device_count() >= 2.

Real (non-padding) tokens/s are counted over the timed steps only (the first --warmup optimizer steps are
skipped), from trl's own `num_tokens` log (attention-mask sums) and a TrainerCallback that synchronises
the GPU at every step end. Each run gets a share of the wall budget (--budget-seconds, counted from the
start) and is stopped at a step end once its share is spent; a run that cannot start in what is left is
skipped, with a line that says so.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

T0 = time.monotonic()
# No network on the GPU machine: never let a library wait on the Hub.
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEMO_MODEL_CACHE = REPO / ".data" / "test-cache" / "demo-model"
RESULTS_NAME = "gpu_check.jsonl"
# Datasheet dense bf16 FLOP/s (no sparsity). KINDS.md measured ~790 TFLOP/s for an 8192^3 bf16 matmul.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
FORMULA = (
    "executed FLOPs per real token = k_w*N + k_a*n_layers*d_model*(sum(len^2)/sum(len)); N = the base "
    "model's matmul weights (all but the input embedding table; lm_head included; LoRA's <1% left out); "
    "LoRA with a frozen base: k_w = 4 (forward 2 + input-gradient 2, no weight gradients), 6 with "
    "gradient checkpointing (+1 recomputed forward); attention (causal, as executed: QK^T and AV = "
    "2*len^2*d_model per layer forward, backward 2x): k_a = 6, 8 with checkpointing; len^2/len over the "
    "data file's rows. MFU = FLOPs/s / peak dense bf16 (H100 and H200 989e12, A100 312e12)."
)
# Seconds a run needs before its first timed step when nothing has been measured yet (load + warm-up).
FIRST_RUN_NEEDS = {"gpu": 90.0, "cpu": 10.0}

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ROLE_WORDS = ["system", "user", "assistant"]
# Qwen's layout, with the assistant's words and end-of-turn token between {% generation %} markers, so
# transformers returns the assistant mask itself (training_app/ml/data.py, method "template").
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ message['content'] }}<|im_end|>{% endif %}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def emit(record: dict[str, Any]) -> None:
    record["elapsed_s"] = round(time.monotonic() - T0, 1)
    line = json.dumps(record, default=str)
    print(line, flush=True)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, RESULTS_NAME), "a") as handle:
            handle.write(line + "\n")


# --- tokenizer, model and data ---------------------------------------------------------------------------


def word_list(count: int) -> list[str]:
    """Pronounceable made-up words: one token each (after a space) for the offline tokenizer."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    words = []
    for index in range(count):
        word, value = "", index
        for _ in range(3):
            word += consonants[value % len(consonants)] + vowels[(value // len(consonants)) % len(vowels)]
            value //= len(consonants) * len(vowels)
        words.append(word)
    return words


def offline_tokenizer(words: list[str]) -> Any:
    """A Qwen2 tokenizer made here, offline: byte-level BPE trained on `words` (each " word" one token).

    It has to be a Qwen2Tokenizer: for a folder whose config.json says qwen2, transformers 5's
    AutoTokenizer rebuilds Qwen2Tokenizer from tokenizer.json's vocab and merges, whatever class
    tokenizer_config.json names (a word-level tokenizer came back empty that way).
    """
    import json as json_module

    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=30_000,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    corpus = [" ".join(words[i : i + 50]) for i in range(0, len(words), 50)] * 2 + [" ".join(ROLE_WORDS)]
    backend.train_from_iterator(corpus, trainer)
    model = json_module.loads(backend.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=[tuple(merge) for merge in model["merges"]],
        eos_token=SPECIAL_TOKENS[2],  # <|im_end|>, as Qwen2.5's
        pad_token=SPECIAL_TOKENS[0],  # <|endoftext|>
    )
    tokenizer.add_tokens(
        [AddedToken(token, special=True) for token in SPECIAL_TOKENS[1:]], special_tokens=True
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def load_or_make_tokenizer(choice: str, tiny: bool) -> tuple[Any, str]:
    from transformers import AutoTokenizer

    # auto: the demo model's for --tiny where this checkout has it; the offline Qwen2 one for the 7B shape.
    if choice == "demo" or (choice == "auto" and tiny and (DEMO_MODEL_CACHE / "tokenizer.json").is_file()):
        if not (DEMO_MODEL_CACHE / "tokenizer.json").is_file():
            from models_app.ml.demo_model import ensure_demo_model

            ensure_demo_model(DEMO_MODEL_CACHE)
        return AutoTokenizer.from_pretrained(DEMO_MODEL_CACHE, local_files_only=True), "demo model's"
    return offline_tokenizer(word_list(4000)), "Qwen2 byte-level BPE made offline"


def model_config(tiny: bool, tokenizer: Any) -> Any:
    from transformers import Qwen2Config

    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if tiny:
        return Qwen2Config(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=64 * math.ceil(len(tokenizer) / 64),
            max_position_embeddings=512,
            tie_word_embeddings=False,
            **special,
        )
    return Qwen2Config(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        **special,
    )


def build_model(folder: Path, tiny: bool, tokenizer: Any, device: str) -> dict[str, Any]:
    """Random weights (bf16 on a GPU, fp32 for --tiny), made on the device and saved with the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    config = model_config(tiny, tokenizer)
    dtype = torch.float32 if tiny else torch.bfloat16
    started = time.monotonic()
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    made_s = time.monotonic() - started
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return {
        "params_total": total,
        "params_matmul": total - embedding,
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "vocab": config.vocab_size,
        "dtype": str(dtype).replace("torch.", ""),
        "make_s": round(made_s, 1),
        "save_s": round(time.monotonic() - started - made_s, 1),
    }


def write_conversations(path: Path, rows: int, low: int, high: int, words: list[str], seed: int = 7) -> None:
    """Rows of about `low`..`high` words in all (40% the user's, 60% the assistant's), one JSONL file."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(rows):
            total = rng.randint(low, high)
            asked = max(1, int(total * 0.4))
            messages = [
                {"role": "user", "content": " ".join(rng.choices(words, k=asked))},
                {"role": "assistant", "content": " ".join(rng.choices(words, k=max(1, total - asked)))},
            ]
            handle.write(json.dumps({"messages": messages, "source_line": index + 1}) + "\n")


def token_lengths(path: Path, tokenizer: Any) -> list[int]:
    lengths = []
    with path.open() as handle:
        for line in handle:
            ids = tokenizer.apply_chat_template(json.loads(line)["messages"], tokenize=True, return_dict=True)
            lengths.append(len(ids["input_ids"]))
    return lengths


# --- measuring --------------------------------------------------------------------------------------------


def step_timer(warmup: int, deadline: float) -> Any:
    """A TrainerCallback: GPU-synchronised step-end times, trl's cumulative num_tokens, the budget stop."""
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.warmup = warmup
            self.deadline = deadline
            self.ends: dict[int, float] = {}
            self.tokens: dict[int, float] = {}
            self.losses: dict[int, float] = {}
            self.began: float | None = None
            self.stop_reason: str | None = None  # train() logs it when the budget ends the run

        def _now(self) -> float:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            self.began = time.monotonic()
            return control

        def on_step_end(self, args, state, control, **kwargs):
            self.ends[state.global_step] = self._now()
            if time.monotonic() > self.deadline and not control.should_training_stop:
                control.should_training_stop = True
                self.stop_reason = "the benchmark's time budget for this run is spent"
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "num_tokens" in logs:
                self.tokens[state.global_step] = float(logs["num_tokens"])
            if "loss" in logs:
                self.losses[state.global_step] = float(logs["loss"])
            return control

        def timed(self) -> dict[str, Any]:
            steps = [s for s in sorted(self.ends) if s in self.tokens]
            start = self.warmup if self.warmup in steps else None
            last = steps[-1] if steps else None
            if start is None or last is None or last <= start:
                return {"timing": "too few steps to time", "steps_done": max(self.ends, default=0)}
            seconds = self.ends[last] - self.ends[start]
            tokens = self.tokens[last] - self.tokens[start]
            per_step = [
                self.ends[s] - self.ends[s - 1] for s in range(start + 1, last + 1) if s - 1 in self.ends
            ]
            return {
                "timed_steps": last - start,
                "real_tokens": int(tokens),
                "timed_s": round(seconds, 3),
                "tokens_per_s": round(tokens / seconds, 1),
                "step_s_mean": round(seconds / (last - start), 4),
                "step_s_all": [round(x, 3) for x in per_step],
                "loss_first": self.losses.get(min(self.losses)) if self.losses else None,
                "loss_last": self.losses.get(max(self.losses)) if self.losses else None,
            }

    return StepTimer()


def flops_per_token(info: dict[str, Any], checkpointing: bool) -> float:
    k_w, k_a = (6, 8) if checkpointing else (4, 6)
    return k_w * info["params_matmul"] + k_a * info["layers"] * info["hidden"] * info["attention_len"]


def add_mfu(record: dict[str, Any], info: dict[str, Any], tokens_per_s: float | None) -> None:
    checkpointing = record.get("gradient_checkpointing")
    if tokens_per_s is None or checkpointing is None:
        return
    per_token = flops_per_token(info, bool(checkpointing))
    record["flops_per_token"] = round(per_token)
    record["executed_tflops_per_s"] = round(tokens_per_s * per_token / 1e12, 3)
    if info.get("peak"):
        record["mfu"] = round(tokens_per_s * per_token / info["peak"], 4)


def peak_memory_gib() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def event_rates(events: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """What the product's own metrics events say about the steps after the warm-up."""
    metrics = [e for e in events if e.get("type") == "metrics" and e["step"] > warmup]
    rates = [e["tokens_per_second"] for e in metrics if e.get("tokens_per_second")]
    memory = [e["gpu_memory_mb"] for e in events if e.get("type") == "metrics" and e.get("gpu_memory_mb")]
    losses = [e["loss"] for e in events if e.get("type") == "metrics" and e.get("loss") is not None]
    return {
        "event_steps": len(rates),
        "event_tokens_per_s_mean": round(sum(rates) / len(rates), 1) if rates else None,
        "event_gpu_memory_peak_gib": round(max(memory) / 1024, 2) if memory else None,
        "event_loss_first": losses[0] if losses else None,
        "event_loss_last": losses[-1] if losses else None,
    }


def checkpointing_from(events: list[dict[str, Any]]) -> bool | None:
    for event in events:
        message = event.get("message", "") if event.get("type") == "log" else ""
        if "gradient checkpointing on" in message:
            return True
        if "gradient checkpointing off" in message:
            return False
    return None


# The product's speed-ups switched off: what they buy, on the same card and data.
SPEEDUPS_OFF = {"micro_batching": "off", "liger_kernels": "off", "fused_optimizer": "off"}


def product_recipe(args: argparse.Namespace, **changes: Any) -> Any:
    from training_app.ml.recipe import Recipe

    return Recipe(
        **changes,
        max_steps=args.warmup + args.steps,
        eval_steps=10_000,
        save_steps=10_000,
        logging_steps=1,
        max_seq_len=args.max_seq_len,
        precision="fp32" if args.tiny else "auto",
        gradient_checkpointing=args.product_checkpointing,
    )


# --- the runs ---------------------------------------------------------------------------------------------


def run_product(args, model_dir: Path, data: Path, work: Path, deadline: float, info, plain: bool = False):
    from training_app.ml.errors import TrainingError
    from training_app.ml.train import train

    events: list[dict[str, Any]] = []
    timer = step_timer(args.warmup, deadline)
    started = time.monotonic()
    name = "product_plain_1gpu" if plain else "product_1gpu"
    record: dict[str, Any] = {"kind": "run", "name": name, "path": "training_app.ml.train.train()"}
    try:
        result = train(
            base_model_dir=model_dir,
            train_path=data,
            validation_path=None,
            output_dir=work / name,
            recipe=product_recipe(args, **(SPEEDUPS_OFF if plain else {})),
            on_event=events.append,
            checkpointing_needed=False,
            extra_callbacks=[timer],
            check_held_out=lambda: False,
        )
        record.update(status="ok", final_step=result.final_step)
    except TrainingError as error:
        record.update(status="error", error=f"{type(error).__name__}: {error}"[:500])
    except Exception as error:  # record it and go on with the next run
        record.update(status="error", error=repr(error)[:500])
    record["gradient_checkpointing"] = checkpointing_from(events)
    record["precision"] = next(
        (p for p in ("bf16", "fp16", "fp32") for e in events if f" in {p}," in e.get("message", "")), None
    )
    record["plan"] = next(
        (e["message"] for e in events if e.get("message", "").startswith("Training ")), None
    )
    record["losses"] = {e["step"]: e["loss"] for e in events if e.get("type") == "metrics" and e.get("loss")}
    record["peak_mem_alloc_gib"] = peak_memory_gib()
    record["load_s"] = round(timer.began - started, 1) if timer.began else None
    record.update(timer.timed())
    if record.get("status") == "ok" and "tokens_per_s" not in record:
        record["status"] = "too_few_steps"
    record.update(event_rates(events, args.warmup))
    if timer.stop_reason:
        record["stopped"] = timer.stop_reason
    record["wall_s"] = round(time.monotonic() - started, 1)
    add_mfu(record, info, record.get("tokens_per_s"))
    free_memory()
    return record


def run_seed(args, model_dir: Path, data: Path, work: Path, deadline: float, info) -> dict[str, Any]:
    """A plain trl script with the seed's settings: what a user of the seed runs, not the product's code."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    gpu = torch.cuda.is_available()
    timer = step_timer(args.warmup, deadline)
    started = time.monotonic()
    record: dict[str, Any] = {"kind": "run", "name": "seed_trl_1gpu", "path": "trl SFTTrainer, seed settings"}
    trainer = model = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        with data.open() as handle:
            rows = [{"messages": json.loads(line)["messages"]} for line in handle]
        dtype = torch.bfloat16 if gpu else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
        config = SFTConfig(
            output_dir=str(work / "seed"),
            per_device_train_batch_size=1,
            gradient_accumulation_steps=8,
            gradient_checkpointing=True,
            learning_rate=2e-4,
            bf16=gpu,
            use_cpu=not gpu,
            max_length=args.max_seq_len,
            max_steps=args.warmup + args.steps,
            logging_steps=1,  # the timer reads trl's num_tokens from every step's log
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
        )
        lora = LoraConfig(
            r=64,
            lora_alpha=16,
            lora_dropout=0.1,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            bias="none",
            task_type="CAUSAL_LM",
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)  # with tqdm off it prints every log dict: output only
        record["optim"] = str(trainer.args.optim).replace("OptimizerNames.", "")
        output = trainer.train()
        record.update(status="ok", final_step=trainer.state.global_step, train_loss=output.training_loss)
    except torch.OutOfMemoryError as error:
        record.update(status="oom", error=str(error)[:300])
    except Exception as error:  # record it and go on with the next run
        record.update(status="error", error=repr(error)[:500])
    record["gradient_checkpointing"] = True
    record["precision"] = "bf16" if gpu else "fp32"
    record["peak_mem_alloc_gib"] = peak_memory_gib()
    record["load_s"] = round(timer.began - started, 1) if timer.began else None
    record.update(timer.timed())
    if record.get("status") == "ok" and "tokens_per_s" not in record:
        record["status"] = "too_few_steps"
    if timer.stop_reason:
        record["stopped"] = timer.stop_reason
    trainer = model = None
    free_memory()
    record["wall_s"] = round(time.monotonic() - started, 1)
    add_mfu(record, info, record.get("tokens_per_s"))
    return record


def run_product_distributed(args, model_dir: Path, data: Path, work: Path, deadline: float, info):
    from training_app.ml.distributed import run_distributed

    events: list[dict[str, Any]] = []
    started = time.monotonic()
    record: dict[str, Any] = {
        "kind": "run",
        "name": "product_2gpu",
        "path": "training_app.ml.distributed.run_distributed(processes=2)",
    }
    env = {} if args.device == "cuda" else {"OMP_NUM_THREADS": "1"}
    try:
        result = run_distributed(
            processes=2,
            base_model_dir=model_dir,
            train_path=data,
            validation_path=None,
            output_dir=work / "product2",
            recipe=product_recipe(args),
            on_event=events.append,
            should_stop=lambda: time.monotonic() > deadline,
            checkpointing_needed=False,
            env=env,
        )
        record.update(status="stopped_by_budget" if result.get("stopped") else "ok")
        record["final_step"] = result.get("final_step")
    except Exception as error:  # TrainingError says why; the launcher's log has the rest
        record.update(status="error", error=f"{type(error).__name__}: {error}"[:500])
        log = work / "product2" / "distributed.log"
        if log.is_file():
            record["log_tail"] = log.read_text(errors="replace")[-1500:]
    record["gradient_checkpointing"] = checkpointing_from(events)
    record["processes"] = next(
        (e["message"] for e in events if e.get("type") == "log" and "processes" in e.get("message", "")), None
    )
    record.update(event_rates(events, args.warmup))
    record["wall_s"] = round(time.monotonic() - started, 1)
    record["note"] = "tokens/s: mean of rank 0's per-step metrics events (global tokens, both cards)"
    add_mfu(record, info, record.get("event_tokens_per_s_mean"))
    if record.get("mfu") is not None:
        record["mfu_per_card"] = round(record["mfu"] / 2, 4)
    return record


# --- main -------------------------------------------------------------------------------------------------


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers

    record: dict[str, Any] = {
        "kind": "env",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": args.device,
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "formula": FORMULA,
    }
    for name in ("peft", "accelerate", "trl", "datasets", "pyarrow", "huggingface_hub"):
        try:
            record[name] = __import__(name).__version__
        except Exception as error:  # reported, and the run that needs it fails with its own message
            record[name] = f"missing ({type(error).__name__})"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        record.update(
            gpu=name,
            gpu_mem_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            peak_bf16_tflops=next((v / 1e12 for k, v in PEAK_BF16.items() if k in name), None),
        )
    return record


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer toy Qwen2, short rows, fp32: a CPU test")
    parser.add_argument("--budget-seconds", type=float, default=420.0, help="wall budget from the start")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps not timed, per run")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per run")
    parser.add_argument("--tokenizer", choices=("auto", "offline", "demo"), default="auto")
    parser.add_argument("--product-checkpointing", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated runs: product_1gpu,product_plain_1gpu,seed_trl_1gpu,product_2gpu",
    )
    parser.add_argument(
        "--distributed-on-cpu", action="store_true", help="with --tiny: the 2-process run on the CPU (gloo)"
    )
    parser.add_argument("--work-dir", default=None, help="where the temporary model folder goes")
    args = parser.parse_args()
    # `timeout` sends SIGTERM: unwind, so the temporary model folder goes and run_distributed ends its ranks.
    signal.signal(signal.SIGTERM, _interrupted)
    import torch

    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cpu" and not args.tiny:
        print("No GPU here: the 7B shape needs one. Use --tiny for the CPU test.", file=sys.stderr)
        return 2
    args.max_seq_len = 128 if args.tiny else 2048
    budget_end = T0 + args.budget_seconds
    env = environment(args)
    emit(env)
    info: dict[str, Any] = {"peak": (env.get("peak_bf16_tflops") or 0) * 1e12 or None}

    work = Path(tempfile.mkdtemp(prefix="lathe-gpu-check-", dir=args.work_dir))
    records: dict[str, dict[str, Any]] = {}
    try:
        tokenizer, tokenizer_kind = load_or_make_tokenizer(args.tokenizer, args.tiny)
        model_dir = work / "model"
        info.update(build_model(model_dir, args.tiny, tokenizer, args.device))
        data = work / "train.jsonl"
        low, high = (12, 90) if args.tiny else (250, 1990)
        # Each optimizer step takes 8 conversations; enough rows that no run needs a second epoch.
        write_conversations(data, 8 * (args.warmup + args.steps), low, high, word_list(4000))
        lengths = token_lengths(data, tokenizer)
        info["attention_len"] = sum(n * n for n in lengths) / sum(lengths)
        emit(
            {
                "kind": "build",
                "tokenizer": f"{tokenizer_kind} ({len(tokenizer)} tokens)",
                **{k: v for k, v in info.items() if k != "peak"},
                "attention_len": round(info["attention_len"], 1),
                "rows": len(lengths),
                "row_tokens_min_mean_max": [min(lengths), round(sum(lengths) / len(lengths)), max(lengths)],
                "model_dir": str(model_dir),
            }
        )
        del tokenizer
        runs = [
            ("product_1gpu", run_product),
            ("product_plain_1gpu", functools.partial(run_product, plain=True)),
            ("seed_trl_1gpu", run_seed),
        ]
        two_cards = args.device == "cuda" and torch.cuda.device_count() >= 2
        if two_cards or (args.tiny and args.distributed_on_cpu):
            runs.append(("product_2gpu", run_product_distributed))
        else:
            emit(
                {
                    "kind": "run",
                    "name": "product_2gpu",
                    "status": "skipped",
                    "why": f"{torch.cuda.device_count()} CUDA device(s): the 2-card run needs 2"
                    if args.device == "cuda"
                    else "no GPU (--distributed-on-cpu runs it on the CPU)",
                }
            )
        if args.only:
            wanted = set(args.only.split(","))
            runs = [(name, run) for name, run in runs if name in wanted]
        needs = FIRST_RUN_NEEDS[args.device]
        for index, (name, run) in enumerate(runs):
            left = budget_end - time.monotonic()
            if left < needs:
                records[name] = {
                    "kind": "run",
                    "name": name,
                    "status": "skipped",
                    "why": f"{left:.0f} s of the {args.budget_seconds:.0f} s budget left; "
                    f"a run needs about {needs:.0f} s to load and warm up",
                }
                emit(records[name])
                continue
            # An equal share of what is left; what a run does not use goes to the later ones.
            deadline = time.monotonic() + max(needs, left / (len(runs) - index))
            record = run(args, model_dir, data, work, min(deadline, budget_end), info)
            records[name] = record
            emit(record)
            if record.get("load_s") is not None and record.get("step_s_mean"):
                needs = max(needs / 2, record["load_s"] + (args.warmup + 2) * record["step_s_mean"] * 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    product, seed = records.get("product_1gpu", {}), records.get("seed_trl_1gpu", {})
    two, plain = records.get("product_2gpu", {}), records.get("product_plain_1gpu", {})
    # The speed-ups' numerics: the loss of each step with and without them (grouping by length reorders
    # the conversations, so the curves agree on average rather than step by step).
    steps = sorted(set(product.get("losses", {})) & set(plain.get("losses", {})))
    mean = lambda record: sum(record["losses"][s] for s in steps) / len(steps) if steps else None  # noqa: E731
    summary = {
        "kind": "summary",
        "product_over_plain_tokens_per_s": ratio(product.get("tokens_per_s"), plain.get("tokens_per_s")),
        "mean_loss_product_and_plain": [mean(product), mean(plain)] if steps else None,
        "product_over_seed_tokens_per_s": ratio(product.get("tokens_per_s"), seed.get("tokens_per_s")),
        "product_over_seed_mfu": ratio(product.get("mfu"), seed.get("mfu")),
        "product_over_seed_peak_mem": ratio(
            product.get("peak_mem_alloc_gib"), seed.get("peak_mem_alloc_gib")
        ),
        "two_cards_over_one_event_tokens_per_s": ratio(
            two.get("event_tokens_per_s_mean"), product.get("event_tokens_per_s_mean")
        ),
        "statuses": {name: record.get("status") for name, record in records.items()},
        "tokens_per_s": {
            name: record.get("tokens_per_s") or record.get("event_tokens_per_s_mean")
            for name, record in records.items()
        },
        "note": "product loss: assistant tokens only; seed loss (trl default): every token; not comparable",
    }
    emit(summary)
    return 0 if records and all(record.get("status") == "ok" for record in records.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

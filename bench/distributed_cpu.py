"""The product's training path on two processes against one, same recipe and global batch, on the CPU.

    .venv/bin/python bench/distributed_cpu.py                 # about 2 minutes on 2 cores
    .venv/bin/python bench/distributed_cpu.py --steps 20 --accum 8
    .venv/bin/python bench/distributed_cpu.py --sharded      # FSDP instead of DDP
    .venv/bin/python bench/distributed_cpu.py --ray          # the 2 processes as a job of a local Ray cluster
    .venv/bin/python bench/distributed_cpu.py --dropout 0    # no LoRA dropout: no random masks to differ

A model of the demo model's tokenizer and Qwen2's architecture, small enough for a CPU (random
weights), learns 64 arithmetic conversations: once by `train()` in this process, once by
`run_distributed(processes=2)` (torchrun, gloo). Each optimizer step sees the same conversations in
both; the two loss curves should agree within float rounding. Prints both curves and the largest
difference, and appends a JSON line to bench/results/distributed_cpu.jsonl. What only a GPU run shows
(NCCL, several cards' speed) is in bench/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench._measure import result_append  # noqa: E402

RESULTS = REPO / "bench" / "results" / "distributed_cpu.jsonl"
DEMO_MODEL_CACHE = REPO / ".data" / "test-cache" / "demo-model"


def small_model(folder: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from models_app.ml.demo_model import ensure_demo_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_demo_model(DEMO_MODEL_CACHE), local_files_only=True)
    config = Qwen2Config(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def conversations(path: Path, count: int) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {index} plus {index + 3}?"},
                {"role": "assistant", "content": f"{index} plus {index + 3} is {2 * index + 3}."},
            ],
            "source_line": index + 1,
        }
        for index in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@dataclass
class LocalRay:
    head: subprocess.Popen
    run: object


def local_ray_cluster(folder: Path) -> LocalRay:
    """`ray start --head` with 2 CPUs and token authentication, in its own process group."""
    import secrets
    import urllib.error
    import urllib.request

    from lathe_common.embedded_redis import free_port
    from training_app.ml.ray_cluster import ClusterRun

    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    dashboard = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--num-cpus=2"]
    command += [f"--port={free_port()}", f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1"]
    command += [f"--temp-dir={temp}", "--object-store-memory=200000000", "--disable-usage-stats"]
    head = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    address = f"http://127.0.0.1:{dashboard}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=2)  # noqa: S310
            break
        except urllib.error.HTTPError:
            break  # it answers, asking for the token
        except OSError:
            time.sleep(0.5)
    return LocalRay(head=head, run=ClusterRun(address=address, name="bench-distributed-cpu"))


def losses(events: list[dict]) -> dict[int, float]:
    return {event["step"]: event["loss"] for event in events if event["type"] == "metrics" and event["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--accum", type=int, default=4, help="micro-batches of one conversation per step")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--sharded", action="store_true", help="FSDP: the processes split the weights")
    parser.add_argument(
        "--ray", action="store_true", help="run the processes as a job of a local Ray cluster (started here)"
    )
    parser.add_argument("--dropout", type=float, default=0.1, help="LoRA dropout")
    args = parser.parse_args()
    from training_app.ml.distributed import run_distributed
    from training_app.ml.recipe import Recipe
    from training_app.ml.train import train

    recipe = Recipe(
        lora_r=8,
        lora_alpha=16,
        lora_dropout=args.dropout,
        batch_size=1,
        grad_accum=args.accum,
        max_steps=args.steps,
        eval_steps=10_000,
        save_steps=10_000,
        logging_steps=1,
        max_seq_len=64,
        learning_rate=1e-3,
        precision="fp32",
    )
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = small_model(folder / "model")
        data = conversations(folder / "train.jsonl", args.steps * args.accum)
        alone: list[dict] = []
        started = time.monotonic()
        train(
            base_model_dir=model,
            train_path=data,
            validation_path=None,
            output_dir=folder / "one",
            recipe=recipe,
            on_event=alone.append,
        )
        one_s = time.monotonic() - started
        shared: list[dict] = []
        cluster = local_ray_cluster(folder) if args.ray else None
        started = time.monotonic()
        try:
            run_distributed(
                processes=args.processes,
                base_model_dir=model,
                train_path=data,
                validation_path=None,
                output_dir=folder / "many",
                recipe=recipe,
                on_event=shared.append,
                sharded=args.sharded,
                env={"OMP_NUM_THREADS": "1"},
                cluster=cluster.run if cluster else None,
            )
        finally:
            if cluster:
                os.killpg(cluster.head.pid, signal.SIGKILL)
        many_s = time.monotonic() - started
    for event in shared:
        if event["type"] == "log" and ("processes" in event["message"] or "Ray" in event["message"]):
            print(event["message"])
    one, many = losses(alone), losses(shared)
    steps = sorted(set(one) & set(many))
    print(f"step | 1 process | {args.processes} processes | difference")
    for step in steps:
        print(f"{step:4d} | {one[step]:.6f} | {many[step]:.6f} | {many[step] - one[step]:+.2e}")
    largest = max(abs(many[step] - one[step]) for step in steps)
    print(
        f"\nlargest difference {largest:.2e} over {len(steps)} steps; wall {one_s:.1f} s and {many_s:.1f} s"
    )
    result_append(
        RESULTS,
        args=vars(args),
        one_process=one,
        processes=many,
        largest_difference=largest,
        wall_s={"one": one_s, "many": many_s},
    )


if __name__ == "__main__":
    main()

"""The recipe's speed-ups against the plain path, same recipe and data, on the CPU: the loss curves.

    .venv/bin/python bench/speedups_cpu.py                 # about a minute on 2 cores
    .venv/bin/python bench/speedups_cpu.py --steps 20 --accum 8

The small Qwen2-shaped model of bench/distributed_cpu.py (random weights, the demo model's tokenizer)
learns arithmetic conversations of different lengths four times through `train()`: plain (one
conversation at a time, plain AdamW), with micro-batching ('on': the step's conversations together,
padded), with the fused AdamW, and with both. Micro-batching and the fused optimizer change only how the
same step is computed, so each curve should be the plain one within float rounding; prints the curves,
the largest difference of each, and the wall times (a CPU gains little: on GPUs 'auto' turns them on,
bench/gpu_check.sh times them there, with Liger's kernels, which need a GPU). Appends a JSON line to
bench/results/speedups_cpu.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench._measure import result_append  # noqa: E402

RESULTS = REPO / "bench" / "results" / "speedups_cpu.jsonl"

VARIANTS = {
    "plain": {"micro_batching": "off", "fused_optimizer": "off"},
    "micro_batching": {"micro_batching": "on", "fused_optimizer": "off"},
    "fused_adamw": {"micro_batching": "off", "fused_optimizer": "on"},
    "both": {"micro_batching": "on", "fused_optimizer": "on"},
}


def varied_conversations(path: Path, count: int) -> Path:
    """Answers of different lengths, so the micro-batches are padded."""
    rows = []
    for index in range(count):
        added = range(1, 2 + index % 6)
        steps = " then ".join(f"add {k}" for k in added)
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Start at {index} and {steps}. Where do you end?"},
                    {
                        "role": "assistant",
                        "content": f"Starting at {index}, {steps} ends at {index + sum(added)}.",
                    },
                ],
                "source_line": index + 1,
            }
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--accum", type=int, default=4, help="conversations per step")
    parser.add_argument(
        "--dropout",
        type=float,
        default=0.1,
        help="LoRA dropout (0: no random masks, whose draws differ by batch shape)",
    )
    args = parser.parse_args()
    from bench.distributed_cpu import losses, small_model
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
        max_seq_len=96,
        learning_rate=1e-3,
        precision="fp32",
    )
    curves, walls, plans = {}, {}, {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = small_model(folder / "model")
        data = varied_conversations(folder / "train.jsonl", args.steps * args.accum)
        for name, changes in VARIANTS.items():
            events: list[dict] = []
            started = time.monotonic()
            train(
                base_model_dir=model,
                train_path=data,
                validation_path=None,
                output_dir=folder / name,
                recipe=recipe.replace(**changes),
                on_event=events.append,
            )
            walls[name] = time.monotonic() - started
            curves[name] = losses(events)
            plans[name] = next(
                e["message"] for e in events if e["type"] == "log" and e["message"].startswith("Training ")
            )
    plain = curves["plain"]
    print(" | ".join(["step", *VARIANTS]))
    for step in sorted(plain):
        print(" | ".join([f"{step:4d}", *(f"{curves[name][step]:.6f}" for name in VARIANTS)]))
    largest = {
        name: max(abs(curves[name][step] - plain[step]) for step in plain)
        for name in VARIANTS
        if name != "plain"
    }
    for name in VARIANTS:
        extra = f"; largest difference from plain {largest[name]:.2e}" if name in largest else ""
        print(f"{name}: {walls[name]:.1f} s{extra} ({plans[name]})")
    result_append(
        RESULTS,
        args=vars(args),
        curves=curves,
        largest_difference=largest,
        wall_s=walls,
    )


if __name__ == "__main__":
    main()

"""Preference tuning (DPO, ORPO, SimPO, KTO) against supervised fine-tuning on the same data size,
through the product's trainer, on this CPU.

The demo model (SmolLM2-135M-Instruct) trains the same LoRA recipe once per objective: supervised on N
conversations (each pair's prompt and preferred answer), then each preference method on the N pairs (KTO
reads them as N good and N bad answers). Reported per run: the trainer's tokens/s (trl counts the tokens
it puts through the model: both answers of a pair), examples (conversations, pairs or rated answers) per
second and seconds per step (model loading included in all, no evaluation in any), and the worker's peak
RAM.

    .venv/bin/python bench/dpo_cpu.py [--rows 32] [--steps 8] [--objectives sft,dpo,orpo,simpo,kto]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._measure import result_append  # noqa: E402
from tests.training_app.ml.conftest import recorder, write_jsonl  # noqa: E402
from tests.training_app.ml.test_preference_training import pair  # noqa: E402

TOPICS = "tides volcanoes glaciers comets deserts rivers forests reefs storms caves".split()


def _pair(index: int) -> dict:
    """Longer than the test's sums: an explanation chosen over a brush-off."""
    row = pair(index)
    topic = TOPICS[index % len(TOPICS)]
    row["messages"][0]["content"] = f"Explain, for case {index}, what shapes {topic} and how fast it changes."
    row["messages"][1]["content"] = (
        f"Case {index}: {topic} are shaped mostly by water, heat and time. Change is slow, over years, "
        f"except after storms or floods, when a single day can move more than a decade."
    )
    return row


def _run(objective: str, rows: list[dict], steps: int, folder: Path) -> dict:
    from models_app.ml.demo_model import ensure_demo_model
    from training_app.ml.recipe import Recipe
    from training_app.ml.train import train

    model_dir = ensure_demo_model(REPO / ".data" / "test-cache" / "demo-model")
    if objective == "sft":
        rows = [{key: value for key, value in row.items() if key != "rejected"} for row in rows]
    train_path = write_jsonl(folder / f"{objective}-train.jsonl", rows)
    recipe = Recipe(
        objective=objective,
        lora_r=16,
        lora_alpha=32,
        target_modules="all_linear",
        batch_size=2,
        grad_accum=2,
        max_steps=steps,
        eval_steps=steps,
        save_steps=steps,
        max_seq_len=256,
        learning_rate=2e-4 if objective == "sft" else 5e-5,
        warmup_ratio=0.0,
        beta=2.0 if objective == "simpo" else 0.1,  # SimPO's paper range
    )
    events: list[dict] = []
    started = time.perf_counter()
    train(
        base_model_dir=model_dir,
        train_path=train_path,
        validation_path=None,
        output_dir=folder / objective,
        recipe=recipe,
        on_event=recorder(events),
        check_held_out=lambda: False,
    )
    wall = time.perf_counter() - started
    metrics = [event for event in events if event["type"] == "metrics"]
    rates = [event["tokens_per_second"] for event in metrics[1:] if event["tokens_per_second"]]
    examples = steps * recipe.effective_batch_size
    return {
        "objective": objective,
        "steps": steps,
        "examples": examples,
        "tokens_per_second": round(statistics.median(rates), 1) if rates else None,
        "examples_per_second": round(examples / wall, 2),
        "seconds_per_step": round(wall / steps, 2),
        "wall_s": round(wall, 1),
        "peak_process_mb": max(event["process_memory_mb"] or 0 for event in metrics),
        "last_step_preference_accuracy": metrics[-1].get("preference_accuracy"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--objectives", default="sft,dpo,orpo,simpo,kto")
    args = parser.parse_args()
    rows = [_pair(index) for index in range(args.rows)]
    with tempfile.TemporaryDirectory() as folder:
        for objective in args.objectives.split(","):
            result = _run(objective, rows, args.steps, Path(folder))
            print(result, flush=True)
            result_append(REPO / "bench" / "results" / "dpo_cpu.jsonl", **result)


if __name__ == "__main__":
    main()

"""The driver of a Ray job (training_app/ml/ray_cluster.py submits `python -m training_app.ml.ray_entry
CONFIG PROCESSES`): Ray Train's `TorchTrainer` starts one worker per rank on the cluster's nodes, sets up
the process group (NCCL on GPUs, gloo on CPUs) and the usual RANK/LOCAL_RANK/WORLD_SIZE, and each
worker runs the same `rank_main` as a torchrun rank. A lost worker fails the run at once (no retries in
Ray: Lathe resumes from the last checkpoint, as after any lost process)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from training_app.ml.errors import TrainingNotRunnable


def _rank(config: dict) -> None:
    import torch
    from ray.train.torch import get_device

    from training_app.ml.distributed_entry import rank_main

    if torch.cuda.is_available():
        torch.cuda.set_device(get_device())
    if rank_main(json.loads(Path(config["config_path"]).read_text())) != 0:
        raise SystemExit("Training failed; rank 0 wrote why.")


def main(config_path: str, processes: int) -> int:
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.init()  # the cluster this job was submitted to
    config = json.loads(Path(config_path).read_text())
    resources = ray.cluster_resources()
    use_gpu = resources.get("GPU", 0) >= 1
    have = int(resources.get("GPU" if use_gpu else "CPU", 0))
    if processes > have:  # Ray would wait for them for ever: say so instead
        refusal = TrainingNotRunnable(
            f"The Ray cluster has {have} {'GPUs' if use_gpu else 'CPUs'} in all, and this run asks for "
            f"{processes} workers.",
            "Ask for fewer GPUs, or add machines to the cluster (the ray-worker service on each), then "
            "start the job again.",
        )
        Path(config["result_path"]).write_text(json.dumps({"error": refusal.to_dict()}))
        return 1
    output_dir = Path(config["output_dir"])
    trainer = TorchTrainer(
        _rank,
        train_loop_config={"config_path": config_path},
        scaling_config=ScalingConfig(num_workers=processes, use_gpu=use_gpu),
        run_config=RunConfig(
            name="ray",
            storage_path=str(output_dir),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    trainer.fit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))

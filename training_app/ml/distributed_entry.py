"""What each process of a distributed run executes (`python -m torch.distributed.run ... -m
training_app.ml.distributed_entry CONFIG`, or a Ray Train worker: training_app/ml/ray_entry.py): the
product's own `train()`, with rank 0's events appended to a file and its result (or its explained
failure) written for `run_distributed`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from training_app.ml.distributed import is_main_process
from training_app.ml.errors import TrainingError
from training_app.ml.recipe import Recipe


def _append_to(path: Path):
    handle = path.open("a", encoding="utf-8")

    def on_event(event: dict) -> None:
        handle.write(json.dumps(event, allow_nan=False) + "\n")
        handle.flush()

    return on_event


def main(config_path: str) -> int:
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank_main(json.loads(Path(config_path).read_text()))


def rank_main(config: dict) -> int:
    """This rank's part of the run (the process group's environment already set); 0 when it succeeded."""
    main_process = is_main_process()
    from training_app.ml.train import train

    try:
        result = train(
            base_model_dir=config["base_model_dir"],
            train_path=config["train_path"],
            validation_path=config["validation_path"],
            output_dir=config["output_dir"],
            recipe=Recipe.from_dict(config["recipe"]),
            on_event=_append_to(Path(config["events_path"])) if main_process else (lambda event: None),
            resume_from_checkpoint=config["resume_from_checkpoint"],
            checkpointing_needed=config["checkpointing_needed"],
            start_adapter_dir=config.get("start_adapter_dir"),
        )
    except TrainingError as error:
        if main_process:
            Path(config["result_path"]).write_text(json.dumps({"error": error.to_dict()}))
        return 1
    if main_process:
        Path(config["result_path"]).write_text(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""One training run on several processes: torch's launcher starts them, each calls `train()`, rank 0
speaks for the run.

`torch.distributed.run` (torchrun) starts one process per GPU of the machine (or, to check the path on
a machine without one, per share of the CPU, with the gloo backend); transformers' Trainer reads the
launcher's environment and wraps the model in DistributedDataParallel. Each optimizer step covers the
same global batch as a one-process run of the same recipe: every process takes the recipe's
micro-batch and the gradient accumulation is divided among them (`per_process_batch`), accelerate deals
the one-process run's micro-batches out to the processes in turn, and the loss is averaged over the
tokens of all of them. So the loss curve is the one-process run's, within float rounding
(bench/distributed_cpu.py measures the difference).

Only rank 0 reports: its events go to a JSON-lines file that `run_distributed` follows and hands to
`on_event`, as a one-process run's callback would; rank 0 alone saves the adapter and runs the held-out
check, so the adapter is the same files as a one-process run's. If any process dies, torchrun ends the
others and exits non-zero; a stop request ends the launcher's whole process group, and the run resumes
from its last checkpoint. Nothing here imports Django.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lathe_common.child_env import child_env
from lathe_common.cpu import usable_cores
from training_app.ml.errors import TrainingError, TrainingNotRunnable, TrainingProcessLost
from training_app.ml.recipe import Recipe

if TYPE_CHECKING:
    from training_app.ml.ray_cluster import ClusterRun

EVENTS_FILENAME = "events.jsonl"
RESULT_FILENAME = "result.json"
CONFIG_FILENAME = "distributed.json"
LOG_FILENAME = "distributed.log"


def process_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def process_count() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return process_rank() == 0


SHARDED_ENV = "LATHE_SHARDED"


def sharded_run() -> bool:
    """Whether this run's processes shard the model (FSDP) rather than each holding a copy (DDP)."""
    return process_count() > 1 and os.environ.get(SHARDED_ENV) == "1"


def per_process_batch(recipe: Recipe, processes: int, fold_up_to: int = 0) -> tuple[int, int]:
    """(micro-batch, gradient accumulation) of each process, for the recipe's global batch.

    `fold_up_to`: the largest micro-batch that fits (training_app/ml/step_batches.py); as many of the
    process's accumulated micro-batches as fit it then go through together. A step still sees the same
    conversations, and the loss of a step is averaged over all their tokens either way.
    """
    if processes <= 1:
        micro, accumulation = recipe.batch_size, recipe.grad_accum
    elif recipe.grad_accum % processes == 0:
        micro, accumulation = recipe.batch_size, recipe.grad_accum // processes
    elif recipe.batch_size % processes == 0:
        micro, accumulation = recipe.batch_size // processes, recipe.grad_accum
    else:
        micro, accumulation = 0, 0
    if micro:
        together = max(
            k
            for k in range(1, accumulation + 1)
            if accumulation % k == 0 and micro * k <= max(fold_up_to, micro)
        )
        return micro * together, accumulation // together
    raise TrainingNotRunnable(
        f"A batch of {recipe.batch_size} with gradient accumulation {recipe.grad_accum} cannot be shared "
        f"evenly by {processes} processes.",
        f"Make the gradient accumulation (or the batch size) a multiple of {processes}.",
    )


def launch_command(processes: int, config_path: Path, *, python: str = sys.executable) -> list[str]:
    """torchrun on this machine only (`--standalone`: its own rendezvous on a free port)."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "training_app.ml.distributed_entry",
        str(config_path),
    ]


class RankLauncher(Protocol):
    """What started the ranks, as `run_distributed` supervises it: torchrun here, or a Ray job."""

    def running(self) -> bool: ...

    def end(self) -> None:
        """End every rank now (a stop request, or the supervisor unwinding)."""

    def succeeded(self) -> bool: ...

    def failure(self) -> str:
        """How it ended, in words, for a run whose ranks died without explaining."""


def run_distributed(
    *,
    processes: int,
    base_model_dir: str | Path,
    train_path: str | Path,
    validation_path: str | Path | None,
    output_dir: str | Path,
    recipe: Recipe,
    on_event: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool] = lambda: False,
    resume_from_checkpoint: str | Path | None = None,
    checkpointing_needed: bool = False,
    sharded: bool = False,
    env: dict[str, str] | None = None,
    poll_seconds: float = 0.5,
    cluster: ClusterRun | None = None,
    start_adapter_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train on `processes` processes; returns rank 0's `TrainResult.to_dict()`.

    `sharded`: the processes split the model's weights among them (FSDP), for a model whose copy does
    not fit one card; otherwise each holds a whole copy (DDP), which is faster where it fits.
    `cluster`: run them as a job of that Ray cluster (training_app/ml/ray_cluster.py) rather than with
    torchrun on this machine; the output folder is then one the cluster's nodes share.

    Raises `TrainingError` with rank 0's message when training failed for a reason it explained, and
    with the log's tail when a process died. A stop request ends every process; the result then says
    `stopped` and the newest checkpoint is the one to resume from.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    per_process_batch(recipe, processes)  # refuse a batch the processes cannot share, before starting
    events_path, result_path = output_dir / EVENTS_FILENAME, output_dir / RESULT_FILENAME
    for stale in (events_path, result_path):
        stale.unlink(missing_ok=True)
    config_path = output_dir / CONFIG_FILENAME
    config_path.write_text(
        json.dumps(
            {
                "base_model_dir": str(base_model_dir),
                "train_path": str(train_path),
                "validation_path": str(validation_path) if validation_path else None,
                "output_dir": str(output_dir),
                "recipe": recipe.to_dict(),
                "resume_from_checkpoint": str(resume_from_checkpoint) if resume_from_checkpoint else None,
                "checkpointing_needed": checkpointing_needed,
                "start_adapter_dir": str(start_adapter_dir) if start_adapter_dir else None,
                "events_path": str(events_path),
                "result_path": str(result_path),
            }
        )
    )
    log_path = output_dir / LOG_FILENAME
    if cluster is not None:
        from training_app.ml.ray_cluster import ray_ranks_start

        launcher: RankLauncher = ray_ranks_start(
            cluster, processes=processes, config_path=config_path, sharded=sharded, log_path=log_path
        )
        on_event(
            {
                "type": "log",
                "message": f"Running on the Ray cluster at {cluster.address} in {processes} workers "
                f"(Ray job {launcher.submission_id}).",
            }
        )
    else:
        launcher = _Torchrun(
            processes, config_path, log_path, rank_env(sharded=sharded, processes=processes, extra=env)
        )
    follower = _EventFollower(events_path, on_event)
    stopped = False
    try:
        while launcher.running():
            follower.read()
            if not stopped and should_stop():
                stopped = True
                launcher.end()
                break
            time.sleep(poll_seconds)
    except BaseException:
        launcher.end()
        raise
    finally:
        follower.read()
    if stopped:
        return {"stopped": True, "final_step": follower.last_step, "checkpoints": follower.checkpoints}
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if "error" in result:
            error = result["error"]
            raise TrainingError(
                error.get("message", ""), error.get("hint", ""), remedies=error.get("remedies")
            )
        if launcher.succeeded():
            return result
    last_lines = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.is_file() else []
    raise TrainingProcessLost(
        f"A training process ended unexpectedly ({launcher.failure()}).",
        "Resume from the last checkpoint. If it happens again, send the job's log to your administrator"
        + (f" (its last line: {last_lines[0][:300]})." if last_lines else "."),
    )


def rank_env(*, sharded: bool, processes: int = 1, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The ranks' environment: the allowlist of lathe_common/child_env.py (never the worker's secrets:
    the ranks read users' data and models), the Hub's and the libraries' settings, and ours. The ranks
    share this process's cores rather than each taking all of them (`extra` may say otherwise)."""
    repo = str(Path(__file__).resolve().parents[2])
    return child_env(
        prefixes=("HF_", "TRANSFORMERS_", "TOKENIZERS_", "ACCELERATE_", "NCCL_", "GLOO_"),
        extra={
            "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(max(1, usable_cores() // max(1, processes))),
            SHARDED_ENV: "1" if sharded else "0",
            **(extra or {}),
        },
    )


class _Torchrun:
    """torchrun on this machine, in its own process group: every rank ends with it."""

    def __init__(self, processes: int, config_path: Path, log_path: Path, env: dict[str, str]) -> None:
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                launch_command(processes, config_path),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def succeeded(self) -> bool:
        return self.process.wait() == 0

    def failure(self) -> str:
        return f"launcher exit code {self.process.wait()}"

    def end(self, grace_seconds: float = 15.0) -> None:
        """SIGTERM to the launcher's group (torchrun passes it to every rank), SIGKILL after the grace."""
        launcher = self.process
        for signum, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(launcher.pid, signum)
            except ProcessLookupError:
                break
            try:
                launcher.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The launcher is gone; a rank it could not reach is still in the group.
            try:
                os.killpg(launcher.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        launcher.wait()


class _EventFollower:
    """Reads the events rank 0 appended since the last call (whole lines only)."""

    def __init__(self, path: Path, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.path = path
        self.on_event = on_event
        self.offset = 0
        self.last_step = 0
        self.checkpoints: list[dict[str, Any]] = []

    def read(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            event = json.loads(line)
            if event.get("type") == "progress":
                self.last_step = event.get("step") or self.last_step
            if event.get("type") == "checkpoint":
                self.checkpoints.append({"step": event["step"], "path": event["path"]})
            self.on_event(event)

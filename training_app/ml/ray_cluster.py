"""A distributed run as a job of a Ray cluster, for runs that need more GPUs than one machine has.

The supervisor (the Celery worker's runner) stays where it is: it submits a Ray job whose driver,
training_app/ml/ray_entry.py, runs the ranks with Ray Train's `TorchTrainer`, and follows it like a
torchrun launch (training_app/ml/distributed.py's `RankLauncher`). Rank 0's events, its result and the
adapter go to the run's output folder, so that folder must be one every node of the cluster sees at the
same path (the data volume, or an NFS mount: README, "Jobs across machines"). A stop request stops the
Ray job, which ends its driver and every rank on every node; a lost node fails the Ray job, and the run
goes on from its last checkpoint as a run that lost a process does. Nothing here imports Django.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from training_app.ml.errors import TrainingNotRunnable

# The driver's and the ranks' settings, from this worker: ours, the Hub's and the libraries'. Not PATH or
# HOME (the nodes have their own) and never the worker's secrets.
_PASSED_PREFIXES = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "ACCELERATE_", "NCCL_", "GLOO_")


@dataclass(frozen=True)
class ClusterRun:
    """Where and under which name: `address` is the Ray dashboard's (http://head:8265); the Ray job is
    named `<name>-<attempt>`, and earlier attempts of the same name still running are stopped first."""

    address: str
    name: str
    attempt: int = 1
    python: str = sys.executable  # the nodes run the same image as this worker


def ray_ranks_start(
    cluster: ClusterRun, *, processes: int, config_path: Path, sharded: bool, log_path: Path
) -> RayJobRanks:
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(cluster.address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise TrainingNotRunnable(
            f"The Ray cluster at {cluster.address} does not answer ({exc}).",
            "Start the cluster (docker compose --profile ray up), or ask your administrator to check "
            "LATHE_RAY_ADDRESS; then start the job again.",
        ) from exc
    _earlier_attempts_stop(client, cluster.name)
    entrypoint = shlex.join(
        [cluster.python, "-m", "training_app.ml.ray_entry", str(config_path), str(processes)]
    )
    submission_id = client.submit_job(
        entrypoint=entrypoint,
        submission_id=f"{cluster.name}-{cluster.attempt}-{int(time.time())}",
        runtime_env={"env_vars": cluster_env(sharded=sharded)},
        metadata={"lathe_run": cluster.name},
    )
    return RayJobRanks(client, submission_id, log_path)


def cluster_env(*, sharded: bool) -> dict[str, str]:
    from training_app.ml.distributed import SHARDED_ENV

    repo = str(Path(__file__).resolve().parents[2])
    passed = {key: value for key, value in os.environ.items() if key.startswith(_PASSED_PREFIXES)}
    return {
        **passed,
        "PYTHONPATH": repo,
        "PYTHONUNBUFFERED": "1",
        SHARDED_ENV: "1" if sharded else "0",
        "RAY_DEDUP_LOGS": "0",
    }


def _earlier_attempts_stop(client, name: str) -> None:
    """A supervisor that died leaves its Ray job running: stop it, so two runs never write one folder."""
    for job in client.list_jobs():
        if (job.metadata or {}).get("lathe_run") == name and not job.status.is_terminal():
            RayJobRanks(client, job.submission_id, None).end()


class RayJobRanks:
    """A submitted Ray job, followed as `run_distributed` follows torchrun."""

    def __init__(self, client, submission_id: str, log_path: Path | None) -> None:
        self.client = client
        self.submission_id = submission_id
        self.log_path = log_path
        self._status = None

    def running(self) -> bool:
        self._status = self.client.get_job_status(self.submission_id)
        if self._status.is_terminal():
            self._logs_keep()
            return False
        return True

    def succeeded(self) -> bool:
        return self._status == "SUCCEEDED"  # JobStatus is a str enum

    def failure(self) -> str:
        info = self.client.get_job_info(self.submission_id)
        return f"Ray job {self.submission_id} {info.status.value.lower()}: {(info.message or '')[:300]}"

    def end(self, grace_seconds: float = 30.0) -> None:
        """Stop the Ray job (its driver and every rank on every node) and wait until it has ended."""
        self.client.stop_job(self.submission_id)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if self.client.get_job_status(self.submission_id).is_terminal():
                break
            time.sleep(0.5)
        self._logs_keep()

    def _logs_keep(self) -> None:
        """The Ray job's log beside the run's, for the administrator."""
        if self.log_path is not None:
            self.log_path.write_text(self.client.get_job_logs(self.submission_id))

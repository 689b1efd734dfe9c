"""Queue names and routes, in one place.

Data work (validation, cleaning, statistics) runs on CPU workers. Training and
serving go to GPU queues: "gpu" for any GPU, "gpu.<host>.<index>" for one card.
A laptop runs one worker that consumes every queue.
"""

from django.conf import settings

from jobs.states import JobKind

# A namespace lets several installations (or test runs) share one Redis.
_NS = settings.LATHE_REDIS_NAMESPACE

QUEUE_DATA = f"{_NS}data"
QUEUE_GPU_ANY = f"{_NS}gpu"

KIND_QUEUES: dict[str, str] = {
    JobKind.VALIDATE: QUEUE_DATA,
    JobKind.STATS: QUEUE_DATA,
    JobKind.CLEAN_PREVIEW: QUEUE_DATA,
    JobKind.CLEAN_APPLY: QUEUE_DATA,
    JobKind.TRAIN: QUEUE_GPU_ANY,
    JobKind.SWEEP: QUEUE_GPU_ANY,
    # Merging a large model wants a GPU's memory (or a big CPU box); serving holds its card until undeployed.
    JobKind.MERGE: QUEUE_GPU_ANY,
    JobKind.SERVE: QUEUE_GPU_ANY,
    # Generation runs through vLLM: the user's running server when there is one, else one of its own.
    # With an LLM judge, the same job then moves to QUEUE_DATA for the judge's requests (evals_app/runner.py):
    # a GPU worker, where every user's vLLM listens, never calls an address a user gave.
    JobKind.EVALUATE: QUEUE_GPU_ANY,
}

ALL_QUEUES = (QUEUE_DATA, QUEUE_GPU_ANY)


def machine_queue(host: str) -> str:
    """The queue of one machine: every GPU worker there consumes it."""
    return f"{_NS}gpu.{host}"


def gpu_queue(host: str, index: int) -> str:
    """The queue of one card: its worker consumes it besides the shared GPU queue."""
    return f"{_NS}gpu.{host}.{index}"


def queue_for_job(kind: str, target: str | None = None) -> str:
    """The queue a job of this kind goes to; `target` pins it to one GPU queue."""
    if target:
        return target
    return KIND_QUEUES.get(kind, QUEUE_DATA)

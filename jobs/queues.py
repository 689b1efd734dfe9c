"""Queue names and routes, in one place.

Data work (validation, cleaning, statistics) runs on CPU workers. Training and
serving go to GPU queues: "gpu" for any GPU, "gpu.<host>.<index>" for one card.
A laptop runs one worker that consumes every queue.
"""

from django.conf import settings

# A namespace lets several installations (or test runs) share one Redis.
_NS = settings.LATHE_REDIS_NAMESPACE

QUEUE_DATA = f"{_NS}data"
QUEUE_GPU_ANY = f"{_NS}gpu"

ALL_QUEUES = (QUEUE_DATA, QUEUE_GPU_ANY)


def machine_of(worker: str) -> str:
    """The machine a worker runs on, from its Celery name ("gpu@host" -> "host")."""
    return worker.partition("@")[2] or worker


def machine_queue(host: str) -> str:
    """The queue of one machine: every GPU worker there consumes it."""
    return f"{_NS}gpu.{host}"


def gpu_queue(host: str, index: int) -> str:
    """The queue of one card: its worker consumes it besides the shared GPU queue."""
    return f"{_NS}gpu.{host}.{index}"


def card_of_queue(queue: str, host: str) -> int | None:
    """The card index a job's queue pins it to on `host` (None: not one of that machine's card queues)."""
    prefix = machine_queue(host) + "."
    tail = queue[len(prefix) :] if queue.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def queue_for_job(kind: str, target: str | None = None) -> str:
    """The queue a job of this kind goes to; `target` pins it to one GPU queue."""
    from jobs.registry import spec_for

    return target or spec_for(kind).queue

"""Jobs across machines: which runs go to the Ray cluster (LATHE_RAY_ADDRESS), and as what.

A run goes there when the user sends it ("The Ray cluster" among the launch targets) or when it asks
for more GPUs than any one machine connected has. The Celery worker that takes it holds no card: it
supervises the Ray job (training_app/ml/ray_cluster.py) and records its events like a local run's.
"""

from __future__ import annotations

from django.conf import settings

from training_app.ml.ray_cluster import ClusterRun

RAY_TARGET = "ray"  # the launch target's value: not a queue, the job itself goes to the shared GPU queue


def ray_address() -> str:
    return settings.LATHE_RAY_ADDRESS


def cluster_targets() -> list[tuple[str, str]]:
    address = ray_address()
    return [(RAY_TARGET, f"The Ray cluster ({address}), across machines")] if address else []


def cluster_run_for(job) -> ClusterRun:
    """The Ray job of this run's attempt: named after the job, so a new attempt stops an old one first."""
    # The installation's namespace too: two installations may share one cluster.
    namespace = "".join(c if c.isalnum() else "-" for c in settings.LATHE_REDIS_NAMESPACE)
    return ClusterRun(address=ray_address(), name=f"lathe-{namespace}job-{job.pk}", attempt=job.attempts)

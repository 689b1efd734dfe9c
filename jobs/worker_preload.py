"""A model worker imports the ML stack once, before it forks its pool processes.

Training, merging and serving jobs run in the worker's pool processes. Each imported torch,
transformers and peft on its first job (3-7 s on 2 cores), which is most of what a warm spare
takes to serve a new adapter (models_app/serving/spare.py). Imported by the main process before the pool
forks, they are shared by every pool process (copy-on-write) and ready at their first job. Only
workers of GPU queues (the model workers) do it; no CUDA is initialised by importing.
"""

from __future__ import annotations

import logging
import time

from celery.signals import worker_init
from django.conf import settings

from jobs.queues import QUEUE_GPU_ANY, machine_queue

logger = logging.getLogger(__name__)


def is_model_worker(queues: list[str]) -> bool:
    model_queue_prefix = machine_queue("")  # "gpu." under this installation's namespace
    return any(queue == QUEUE_GPU_ANY or queue.startswith(model_queue_prefix) for queue in queues)


def ml_stack_import() -> float:
    """Import what training, merging and serving jobs use; the seconds it took."""
    started = time.monotonic()
    import peft  # noqa: F401
    import torch  # noqa: F401
    from peft import PeftModel  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    return time.monotonic() - started


@worker_init.connect
def _on_worker_init(sender=None, **kwargs) -> None:
    if not settings.LATHE_WORKER_PRELOAD_ML:
        return
    try:
        queues = [queue.name for queue in sender.app.amqp.queues.consume_from.values()]
    except AttributeError:
        return
    if is_model_worker(queues):
        logger.info("imported the ML stack for the pool in %.1f s", ml_stack_import())

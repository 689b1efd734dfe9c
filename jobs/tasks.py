from celery import shared_task

from jobs import (
    worker_lifecycle,  # noqa: F401  (stops and restores what workers started)
    worker_preload,  # noqa: F401  (model workers import the ML stack before forking)
    worker_status,  # noqa: F401  (connects the worker's status reports)
)
from jobs.services import job_execute


@shared_task(name="jobs.run_job", bind=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self, job_id: int) -> None:
    # The queue the message was delivered from (its routing key): a job handed over to another queue
    # is not claimed again from the old one (jobs.services.job_claim).
    queue = (self.request.delivery_info or {}).get("routing_key") or None
    job_execute(job_id=job_id, worker=self.request.hostname or "worker", queue=queue)

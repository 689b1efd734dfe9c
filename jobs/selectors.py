from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from jobs.models import Job, JobEvent
from jobs.states import JobState


def get_job_for_user(user: AbstractBaseUser, job_id: int) -> Job:
    return get_object_or_404(Job, pk=job_id, owner_id=user.pk)


def job_find_for_user(user: AbstractBaseUser, job_id: int) -> Job | None:
    """Like get_job_for_user, for callers that must not raise (websocket consumers)."""
    if not user.is_authenticated:
        return None
    return Job.objects.filter(pk=job_id, owner_id=user.pk).first()


def job_run_owned(job_id: int, attempt: int | None) -> QuerySet[Job]:
    """The job's row while the run of claim number ``attempt`` still owns it (None: any running one).

    A run loses its job when the user cancels it, resumes it (a new claim follows) or
    when it is re-queued after its worker went silent; from then on its updates match nothing.
    """
    running = Job.objects.filter(pk=job_id, state=JobState.RUNNING)
    return running if attempt is None else running.filter(attempts=attempt)


def job_list_for_user(user: AbstractBaseUser) -> QuerySet[Job]:
    return Job.objects.filter(owner_id=user.pk)


def job_events_shown(job: Job) -> QuerySet[JobEvent]:
    """The job's history as pages and APIs show it: without the steps a resumed run trained again."""
    return job.events.filter(superseded=False)


def job_events_after(job: Job, after: int = 0, limit: int = 5000) -> QuerySet[JobEvent]:
    return job_events_shown(job).filter(pk__gt=after).order_by("pk")[:limit]


def job_queue_position(job: Job) -> int | None:
    """How many queued jobs of the same queue are ahead of this one (None unless it is queued)."""
    if job.state != JobState.QUEUED:
        return None
    return Job.objects.filter(queue=job.queue, state=JobState.QUEUED, created_at__lt=job.created_at).count()

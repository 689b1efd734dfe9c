from django.conf import settings
from django.http import HttpRequest

from accounts.selectors import signup_enabled
from jobs.states import job_wire


def site(request: HttpRequest) -> dict:
    return {
        "signup_enabled": signup_enabled(),
        "max_upload_bytes": settings.LATHE_MAX_UPLOAD_BYTES,
        "job_wire": job_wire(),  # event kinds and job states, for static/js/job_watch.js
    }

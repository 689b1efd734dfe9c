"""Event kinds are one enum: what the server stores and broadcasts, and what the browser's scripts compare
with, which they read from the page (#job-wire) instead of spelling the names themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.urls import reverse

from jobs.models import Job
from jobs.services import job_create
from jobs.states import FINISHED_STATES, EventKind, JobKind, JobState, job_wire

STATIC_JS = Path(__file__).resolve().parents[2] / "static" / "js"


def test_the_wire_names_every_event_kind_and_state():
    wire = job_wire()
    assert wire["event_kinds"] == {kind.name: kind.value for kind in EventKind}
    assert wire["states"] == {state.name: state.value for state in JobState}
    assert set(wire["finished_states"]) == {str(state) for state in FINISHED_STATES}
    assert wire["state_labels"][JobState.SUCCEEDED] == "Succeeded"


@pytest.mark.django_db
def test_a_job_page_carries_the_wire_and_the_jobs_events_use_its_kinds(alice, alice_client):
    job = job_create(owner=alice, kind=JobKind.VALIDATE)
    page = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    found = re.search(r'<script id="job-wire" type="application/json">(.*?)</script>', page, re.S)
    assert found and json.loads(found.group(1)) == json.loads(json.dumps(job_wire()))
    kinds = set(Job.objects.get(pk=job.pk).events.values_list("kind", flat=True))
    assert kinds and kinds <= set(EventKind.values)


def test_no_script_spells_an_event_kind_or_a_state_itself():
    names = set(EventKind.values) | set(JobState.values)
    for script in STATIC_JS.glob("*.js"):
        text = script.read_text()
        for name in names:
            spelled = re.search(rf'(===|!==|==)\s*"{name}"|"{name}"\s*(===|!==|==)', text)
            assert not spelled, f'{script.name} compares with "{name}": use window.LatheJobWire'

"""A number a client sends that is not one answers 400 with what is wrong, never a 500."""

import pytest
from django.urls import reverse

from jobs.models import Job
from models_app.models import BaseModel

pytestmark = pytest.mark.django_db


def test_bad_numbers_in_queries_are_the_clients_mistake(alice_client, alice):
    job = Job.objects.create(owner=alice, kind="train", queue="gpu")
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    for url, query in (
        (reverse("training_estimate"), {"base_model": "abc"}),
        (reverse("training_estimate"), {"base_model": str(model.pk), "tokens": "1e9"}),
        (reverse("job_events", args=[job.pk]), {"after": "-1"}),
        (reverse("job_events", args=[job.pk]), {"after": "99999999999999999999999"}),
    ):
        assert alice_client.get(url, query).status_code == 400
    assert alice_client.get(reverse("job_events", args=[job.pk]), {"after": "0"}).status_code == 200


def test_a_bad_dataset_id_on_upload_is_refused(alice_client):
    response = alice_client.post(reverse("dataset_upload"), {"dataset_id": "x"})
    assert response.status_code == 400

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


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"max_tokens": "lots"}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": [1]}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": "nan"}, "temperature"),
        ({"temperature": 1e309}, "temperature"),
        ({"temperature": 9}, "temperature"),
    ],
)
def test_a_bad_number_in_a_json_body_names_its_field(body, named):
    from django.core.exceptions import BadRequest

    from lathe_common.web.params import json_number

    with pytest.raises(BadRequest, match=named):
        json_number(body, "max_tokens", 1, minimum=1, maximum=10**9, whole=True)
        json_number(body, "temperature", 0.0, minimum=0.0, maximum=2.0)


def test_json_numbers_in_range_pass():
    from lathe_common.web.params import json_number

    assert json_number({"n": "3"}, "n", 1, minimum=1, maximum=5, whole=True) == 3
    assert json_number({}, "n", 1, minimum=1, maximum=5) == 1
    assert json_number({"t": 0.7}, "t", 0.0, minimum=0.0, maximum=2.0) == 0.7


def test_list_limits_clamp_to_the_sites_most_instead_of_refusing(alice):
    from django.test import Client

    from accounts.services import api_token_create

    _, key = api_token_create(user=alice, name="script")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for url in ("/v1/files", "/v1/fine_tuning/jobs"):
        for limit in ("200", "0", "-5", "100000000000000000"):
            assert client.get(url, {"limit": limit}).status_code == 200, (url, limit)
        refused = client.get(url, {"limit": "ten"})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "limit"


def test_ids_that_are_not_whole_numbers_or_too_large_answer_400(alice_client):
    huge = "99999999999999999999999"
    for data in ({"adapter_id": "x"}, {"model_id": huge}, {"adapter_id": "-3"}):
        assert alice_client.post(reverse("endpoint_deploy"), data).status_code == 400, data
    for jobs in (["1", "x"], [huge, "2"]):
        assert alice_client.get(reverse("run_compare"), {"job": jobs}).status_code == 400, jobs

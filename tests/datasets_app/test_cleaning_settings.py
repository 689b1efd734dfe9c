"""Cleaning settings are bounded: out of range answers 400 with the field named, and no job starts."""

import pytest
from django.urls import reverse

from datasets_app.services import cleaning_preview_start
from jobs.models import Job
from tests.datasets_app.factories import dataset_with_version

pytestmark = pytest.mark.django_db

GOOD = {"near_dedup": "on", "near_threshold": "0.85", "length_mode": "off", "max_seq_len": "2048"}


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"near_threshold": "5"}, "Near-duplicate similarity (near_threshold)"),
        ({"near_threshold": "nan"}, "(near_threshold)"),
        ({"repeated_char_run": "1000000"}, "(repeated_char_run)"),
        ({"min_chars": "99999999999"}, "Shortest row (characters) (min_chars)"),
        ({"min_chars": "50", "max_chars": "10"}, "Longest row (characters) (max_chars)"),
        ({"max_seq_len": "10000000"}, "(max_seq_len)"),
        ({"length_mode": "explode"}, "(length_mode)"),
    ],
)
def test_an_out_of_range_setting_answers_400_naming_it(alice_client, alice, changes, named):
    _, _, version = dataset_with_version(alice)
    response = alice_client.post(
        reverse("dataset_version_clean", args=[version.pk]), {**GOOD, **changes, "action": "preview"}
    )
    assert response.status_code == 400
    assert named in response.content.decode()
    assert not Job.objects.filter(kind__in=["clean_preview", "clean_apply"]).exists()


def test_the_service_refuses_rules_a_job_could_not_run(alice):
    _, _, version = dataset_with_version(alice)
    with pytest.raises(ValueError, match="num_perm must be a whole number between 16 and 1,024"):
        cleaning_preview_start(version=version, rules={"num_perm": 10**9}, base_model_id=None)
    with pytest.raises(ValueError, match="Unknown cleaning setting"):
        cleaning_preview_start(version=version, rules={"pattern": "(a+)+$"}, base_model_id=None)
    assert not Job.objects.exists()


def test_good_settings_still_start_a_preview(alice_client, alice):
    _, _, version = dataset_with_version(alice)
    response = alice_client.post(
        reverse("dataset_version_clean", args=[version.pk]), {**GOOD, "action": "preview"}
    )
    assert response.status_code == 302
    assert Job.objects.get(kind="clean_preview").params["rules"]["near_threshold"] == 0.85

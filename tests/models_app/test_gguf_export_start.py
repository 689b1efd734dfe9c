"""Starting a GGUF export: the owner only, known types only, one job for a double click."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs.models import Job
from jobs.states import JobKind
from models_app.exporting.services import ExportNotStarted, gguf_export_start
from models_app.models import Adapter, BaseModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter(alice):
    base = BaseModel.objects.create(hf_id="tests/tiny", display_name="Tiny")
    return Adapter.objects.create(owner=alice, base_model=base, name="Support bot", path="/nowhere", rank=4)


def test_the_owner_starts_one_export_per_choice_of_types(alice, alice_client, adapter):
    first = alice_client.post(reverse("gguf_export", args=[adapter.pk]), {"gguf_type": ["q8_0", "f16"]})
    again = alice_client.post(reverse("gguf_export", args=[adapter.pk]), {"gguf_type": ["f16", "q8_0"]})
    job = Job.objects.get(kind=JobKind.EXPORT_GGUF)
    assert first["Location"] == again["Location"] == reverse("job_detail", args=[job.pk])
    assert job.params["gguf_types"] == ["f16", "q8_0"] and job.params["adapter_id"] == adapter.pk
    assert gguf_export_start(owner=alice, adapter=adapter, gguf_types=["bf16"]).pk != job.pk


def test_others_and_unknown_types_are_refused(alice, bob, bob_client, adapter):
    assert bob_client.post(reverse("gguf_export", args=[adapter.pk])).status_code == 404
    with pytest.raises(ExportNotStarted, match="Choose one or more of: f16, bf16, q8_0"):
        gguf_export_start(owner=alice, adapter=adapter, gguf_types=["q4_k_m"])
    with pytest.raises(ExportNotStarted, match="Only the adapter's owner"):
        gguf_export_start(owner=bob, adapter=adapter)
    assert not Job.objects.exists()

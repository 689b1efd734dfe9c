import pytest
from django.urls import reverse

from jobs.models import Job
from models_app.models import Adapter, BaseModel
from models_app.services import base_model_presets_sync

pytestmark = pytest.mark.django_db


def test_it_offers_the_qwen25_family_to_everyone(alice_client):
    assert base_model_presets_sync() >= 14
    assert base_model_presets_sync() == 0  # idempotent
    page = alice_client.get(reverse("model_list")).content.decode()
    for hf_id in ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-72B-Instruct"):
        assert hf_id in page


def test_it_registers_any_hugging_face_id_for_its_owner_only(alice_client, bob_client, alice):
    alice_client.post(reverse("model_list"), {"hf_id": "mistralai/Mistral-7B-v0.3"})
    assert BaseModel.objects.get(hf_id="mistralai/Mistral-7B-v0.3").owner == alice
    assert "mistralai/Mistral-7B-v0.3" not in bob_client.get(reverse("model_list")).content.decode()


def test_it_explains_a_malformed_id(alice_client):
    response = alice_client.post(reverse("model_list"), {"hf_id": "../../etc"})
    assert "organisation/model-name" in response.content.decode()
    assert not BaseModel.objects.filter(hf_id="../../etc").exists()


def test_it_lets_only_administrators_register_a_server_folder(alice_client, tmp_path, django_user_model):
    (tmp_path / "config.json").write_text("{}")
    response = alice_client.post(reverse("model_list"), {"local_dir": str(tmp_path)})
    assert "Only an administrator" in response.content.decode()
    admin = django_user_model.objects.create_user("root", password="x", is_staff=True)
    alice_client.force_login(admin)
    alice_client.post(reverse("model_list"), {"local_dir": str(tmp_path), "hf_id": "in-house/model"})
    assert BaseModel.objects.get(hf_id="in-house/model").local_dir == str(tmp_path)


def test_it_lists_a_users_adapters_and_nobody_elses(alice, alice_client, bob_client):
    base = BaseModel.objects.create(hf_id="x/y", display_name="X")
    job = Job.objects.create(owner=alice, kind="train", queue="gpu")
    Adapter.objects.create(owner=alice, base_model=base, job=job, name="cardiology adapter", path="/nowhere")
    assert "cardiology adapter" in alice_client.get(reverse("model_list")).content.decode()
    assert "cardiology adapter" not in bob_client.get(reverse("model_list")).content.decode()

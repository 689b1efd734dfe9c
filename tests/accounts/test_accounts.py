import hashlib

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken, SiteSettings

pytestmark = pytest.mark.django_db


def test_it_signs_up_and_logs_in_a_new_user(client, settings):
    settings.LATHE_SIGNUP_ENABLED = True
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "",
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
        },
    )
    assert response.status_code == 302
    assert client.get(reverse("dataset_list")).status_code == 200


def test_it_hides_signup_when_the_admin_turns_it_off(client):
    SiteSettings.objects.create(signup_enabled=False)
    assert client.get(reverse("signup")).status_code == 404
    assert b"Sign up" not in client.get(reverse("login")).content


def test_it_opens_signup_when_the_admin_turns_it_on(client):
    SiteSettings.objects.create(signup_enabled=True)
    assert client.get(reverse("signup")).status_code == 200
    assert b"Sign up" in client.get(reverse("login")).content


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get(reverse("dataset_list"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_it_logs_out_with_a_post(alice_client):
    response = alice_client.post(reverse("logout"))
    assert response.status_code == 302
    assert alice_client.get(reverse("dataset_list")).status_code == 302


def test_it_refuses_a_form_post_without_a_csrf_token(alice):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    response = strict.post(reverse("token_list"), {"name": "script"})
    assert response.status_code == 403
    assert not ApiToken.objects.exists()


def test_it_shows_a_new_token_once_and_stores_only_its_hash(alice_client, alice):
    response = alice_client.post(reverse("token_list"), {"name": "upload script"})
    plaintext = response.context["new_token"]
    token = ApiToken.objects.get(owner=alice)
    assert plaintext.startswith("lathe_")
    assert token.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str(ApiToken.objects.values_list().get())
    assert plaintext not in alice_client.get(reverse("token_list")).content.decode()


def test_it_accepts_a_token_until_it_is_revoked(alice_client, alice, client):
    plaintext = alice_client.post(reverse("token_list"), {"name": "ci"}).context["new_token"]
    api = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}
    assert api.get(reverse("api_dataset_list"), **auth).status_code == 200
    token = ApiToken.objects.get(owner=alice)
    assert token.last_used_at is not None
    alice_client.post(reverse("token_revoke", args=[token.pk]))
    response = api.get(reverse("api_dataset_list"), **auth)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_it_refuses_api_calls_without_a_token(client):
    assert client.get(reverse("api_dataset_list")).status_code == 401
    assert client.get(reverse("api_dataset_list"), HTTP_AUTHORIZATION="Bearer lathe_wrong").status_code == 401


def test_it_does_not_let_one_user_revoke_anothers_token(alice, bob_client):
    token = ApiToken.objects.create(owner=alice, name="x", prefix="lathe_abc", key_hash="0" * 64)
    assert bob_client.post(reverse("token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None

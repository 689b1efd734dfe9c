"""Sign-up is closed by default; an administrator's one-time invitation link lets one person in."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-pass-phrase-9"


def _sign_up(client, url: str, username: str):
    return client.post(url, {"username": username, "email": "", "password1": PASSWORD, "password2": PASSWORD})


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser(username="root", password="root-password-1")
    client.force_login(admin)
    return client


def _invitation_link(admin_client) -> str:
    page = admin_client.post(reverse("invitation_list"), {"note": "for carol"}).content.decode()
    start = page.index("http://testserver/accounts/signup/?invitation=")
    return page[start : page.index("<", start)].removeprefix("http://testserver")


def test_it_closes_signup_by_default_and_says_how_to_get_in(client):
    closed = client.get(reverse("signup"))
    assert closed.status_code == 404
    assert "Ask your administrator for an invitation" in closed.content.decode()
    assert _sign_up(client, reverse("signup"), "mallory").status_code == 404
    assert not get_user_model().objects.filter(username="mallory").exists()
    login_page = client.get(reverse("login")).content.decode()
    assert "Ask your administrator for an invitation" in login_page
    assert "Sign up</a>" not in login_page


def test_it_lets_the_environment_force_signup_open(client, settings):
    settings.LATHE_SIGNUP_ENABLED = True
    assert _sign_up(client, reverse("signup"), "dave").status_code == 302
    assert get_user_model().objects.filter(username="dave").exists()


def test_it_lets_one_person_in_with_an_invitation_link_once(admin_client, django_user_model):
    from django.test import Client

    link = _invitation_link(admin_client)
    invitation = Invitation.objects.get()
    assert link.split("=", 1)[1] not in str(Invitation.objects.values_list().get())  # only a hash is kept
    carol = Client()
    assert carol.get(link).status_code == 200
    response = _sign_up(carol, link, "carol")
    assert response.status_code == 302
    assert carol.get(reverse("dataset_list")).status_code == 200  # logged in
    invitation.refresh_from_db()
    assert invitation.used_by.username == "carol"
    again = Client()
    refused = again.get(link)
    assert refused.status_code == 404
    assert "already used or has expired" in refused.content.decode()
    assert _sign_up(again, link, "eve").status_code == 404
    assert not django_user_model.objects.filter(username="eve").exists()


def test_it_refuses_an_expired_invitation(admin_client, client):
    from django.test import Client

    link = _invitation_link(admin_client)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    visitor = Client()
    refused = visitor.get(link)
    assert refused.status_code == 404
    assert "Ask your administrator for a new one" in refused.content.decode()
    assert _sign_up(visitor, link, "frank").status_code == 404


def test_it_keeps_the_invitation_page_for_administrators(alice_client):
    assert alice_client.get(reverse("invitation_list")).status_code == 302
    assert alice_client.post(reverse("invitation_list"), {"note": "x"}).status_code == 302
    assert not Invitation.objects.exists()

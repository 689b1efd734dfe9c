"""Guessing passwords: after LATHE_LOGIN_FAILURE_LIMIT failures, a user name is locked out there."""

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _log_in(client: Client, password: str, address: str = "203.0.113.7"):
    return client.post(reverse("login"), {"username": "alice", "password": password}, REMOTE_ADDR=address)


def test_it_locks_out_a_user_name_after_repeated_failures_and_says_when_to_retry(alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _log_in(client, "wrong")
        assert response.status_code == 200
        assert "don't match" in response.content.decode()
    locked = _log_in(client, "wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed log-ins" in page
    assert "15 minutes" in page and "try again after" in page
    # Even the right password is refused while the lock lasts...
    assert _log_in(client, "alice-password-1").status_code == 429
    assert client.get(reverse("dataset_list")).status_code == 302
    # ...from that address only: the owner elsewhere is not shut out by someone guessing.
    elsewhere = Client()
    assert _log_in(elsewhere, "alice-password-1", address="198.51.100.2").status_code == 302


def test_it_logs_in_with_the_right_password_and_forgets_earlier_failures(alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(client, "wrong")
    assert _log_in(client, "alice-password-1").status_code == 302
    client.post(reverse("logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _log_in(client, "wrong").status_code == 200


def test_it_keeps_force_login_working(alice_client):
    assert alice_client.get(reverse("dataset_list")).status_code == 200


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_locks_out_through_the_real_server(live_site, alice):
    import re

    import httpx

    with httpx.Client(base_url=live_site, timeout=30) as browser:

        def attempt(password: str) -> httpx.Response:
            page = browser.get("/accounts/login/").text
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
            return browser.post(
                "/accounts/login/",
                data={"username": "alice", "password": password, "csrfmiddlewaretoken": token},
                headers={"Referer": f"{live_site}/accounts/login/"},
            )

        statuses = [attempt("wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
        assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
        locked = attempt("alice-password-1")
        assert locked.status_code == 429 and "try again after" in locked.text

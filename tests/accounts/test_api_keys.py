"""One API-key path: /api, the /v1 files and the gateway refuse a bad key with the same answer.

Through the live site (uvicorn, so the gateway's ASGI fast path too) and through Django's views alone
(the gateway's view without the fast path in front), with the ways a key goes wrong in practice.
"""

from __future__ import annotations

import httpx
import pytest
from django.test import Client

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke
from lathe_common.web.api_auth import KEY_REFUSED_MESSAGE

# Each entrance, with a request that a valid key gets past the key check with (the gateway's model
# is deployed nowhere: past the key, it is a 404 for the model).
ENTRANCES = {
    "/api": ("get", "/api/datasets/", None),
    "/v1/files": ("get", "/v1/files", None),
    "gateway": ("post", "/v1/chat/completions", {"model": "nobody/nothing", "messages": []}),
}
REFUSED = {
    "error": {
        "message": KEY_REFUSED_MESSAGE,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def bad_headers(valid_key: str, revoked_key: str) -> dict[str, dict[str, str]]:
    return {
        "missing": {},
        "no key after bearer": {"Authorization": "Bearer"},
        "another scheme": {"Authorization": f"Token {valid_key}"},
        "not a key": {"Authorization": "Bearer lathe_not-a-key"},
        "revoked": {"Authorization": f"Bearer {revoked_key}"},
    }


@pytest.fixture
def keys(alice):
    _, valid_key = api_token_create(user=alice, name="script")
    revoked, revoked_key = api_token_create(user=alice, name="old script")
    api_token_revoke(user=alice, token_id=revoked.pk)
    return valid_key, revoked_key


def _through_the_site(live_site: str, method: str, path: str, body, headers: dict) -> tuple[int, dict]:
    response = httpx.request(method, f"{live_site}{path}", json=body, headers=headers, timeout=30)
    return response.status_code, response.json()


def _through_django(method: str, path: str, body, headers: dict) -> tuple[int, dict]:
    extra = {"HTTP_AUTHORIZATION": headers["Authorization"]} if "Authorization" in headers else {}
    if method == "post":
        response = Client().post(path, body, content_type="application/json", **extra)
    else:
        response = Client().get(path, **extra)
    return response.status_code, response.json()


def _assert_one_answer(call, keys) -> None:
    valid_key, revoked_key = keys
    for entrance, (method, path, body) in ENTRANCES.items():
        for case, headers in bad_headers(valid_key, revoked_key).items():
            status, answer = call(method, path, body, headers)
            assert (status, answer) == (401, REFUSED), (entrance, case)
        status, answer = call(method, path, body, {"Authorization": f"Bearer {valid_key}"})
        if entrance == "gateway":
            assert (status, answer["error"]["code"]) == (404, "model_not_found"), entrance
        else:
            assert status == 200 and answer["data"] == [], entrance


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_answers_a_bad_key_the_same_at_every_entrance_of_the_site(live_site, keys):
    _assert_one_answer(lambda *request: _through_the_site(live_site, *request), keys)


@pytest.mark.django_db(transaction=True)
def test_it_answers_a_bad_key_the_same_in_every_view(keys):
    _assert_one_answer(_through_django, keys)


@pytest.mark.django_db
def test_it_marks_a_key_used_on_the_api_and_the_files_api(alice):
    token, key = api_token_create(user=alice, name="script")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for path in ("/api/datasets/", "/v1/files"):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=None)
        assert api.get(path).status_code == 200
        assert ApiToken.objects.get(pk=token.pk).last_used_at is not None, path


@pytest.mark.django_db
def test_it_answers_a_missing_object_under_api_in_openais_shape(alice):
    """A deliberate change: /api's 404s were Django's HTML page; now the error shape every entrance uses."""
    _, key = api_token_create(user=alice, name="script")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/datasets/999999/")
    assert response.status_code == 404
    not_found = {"message": "Not found.", "type": "invalid_request_error", "param": None, "code": "not_found"}
    assert response.json() == {"error": not_found}

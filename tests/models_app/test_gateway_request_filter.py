"""What the gateway lets through to vLLM: known fields, `n` and `max_tokens` within limits, text only."""

from __future__ import annotations

import httpx
import orjson
import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from models_app.gateway.request_filter import FORWARDED_FIELDS, upstream_body
from tests.models_app.test_gateway import deployed  # noqa: F401 (a fixture)

PROMPT = [{"role": "user", "content": "What is 7 plus 7?"}]
IMAGE = {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data/"}}


def post(live_site: str, key: str, body: dict, path: str = "/v1/chat/completions") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{live_site}{path}", json=body, headers=headers, timeout=120)


def refusal(response: httpx.Response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["error"]


@pytest.mark.worker
@pytest.mark.ml_heavy  # the session's vLLM start (see test_gateway.py)
@pytest.mark.django_db(transaction=True)
def test_it_forwards_no_field_outside_the_allowlist(live_site, deployed, vllm_server):  # noqa: F811
    """`return_token_ids` changes vLLM's answer when sent to it directly; through the gateway it does not."""
    _, endpoint, _, key = deployed
    body = {
        "model": endpoint.served_name,
        "messages": PROMPT,
        "max_tokens": 4,
        "temperature": 0,
        "return_token_ids": True,
    }
    direct = httpx.post(
        f"{vllm_server.base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {vllm_server.secret}"},
        timeout=120,
    )
    assert direct.status_code == 200 and direct.json()["prompt_token_ids"]  # the field works on vLLM

    for _ in range(2):  # Django's answer, then the fast path's (the key and route are remembered)
        through_gateway = post(live_site, key, body)
        assert through_gateway.status_code == 200, through_gateway.text
        assert not through_gateway.json().get("prompt_token_ids")
        assert through_gateway.json()["choices"][0]["message"]["content"]


@pytest.mark.worker
@pytest.mark.ml_heavy  # the session's vLLM start (see test_gateway.py)
@pytest.mark.django_db(transaction=True)
def test_it_refuses_n_and_max_tokens_over_the_sites_limits(live_site, deployed):  # noqa: F811
    _, endpoint, _, key = deployed
    base = {"model": endpoint.served_name, "messages": PROMPT, "max_tokens": 4, "temperature": 0}

    within = post(live_site, key, {**base, "n": 2, "temperature": 0.8})  # vLLM wants n=1 when greedy
    assert within.status_code == 200, within.text
    assert len(within.json()["choices"]) == 2

    error = refusal(post(live_site, key, {**base, "n": 5}))
    assert (
        error["param"] == "n" and "1 to 4" in error["message"] and "LATHE_GATEWAY_MAX_N" in error["message"]
    )
    for field in ("max_tokens", "max_completion_tokens"):
        error = refusal(post(live_site, key, {**base, field: 100_000}))
        assert error["param"] == field and "1 to 4096" in error["message"]
        assert "LATHE_GATEWAY_MAX_TOKENS" in error["message"]
    assert refusal(post(live_site, key, {**base, "n": "3"}))["param"] == "n"
    error = refusal(post(live_site, key, {**base, "min_tokens": 100_000}))
    assert error["param"] == "min_tokens" and "0 to 4096" in error["message"]
    # Within the limit it reaches vLLM: the greedy answer is as long as asked, not where the model stops.
    floored = post(live_site, key, {**base, "max_tokens": 24, "min_tokens": 24})
    assert floored.status_code == 200 and floored.json()["usage"]["completion_tokens"] == 24
    completions = {"model": endpoint.served_name, "prompt": "Hello", "max_tokens": 5000}
    assert refusal(post(live_site, key, completions, "/v1/completions"))["param"] == "max_tokens"


@pytest.mark.worker
@pytest.mark.ml_heavy  # the session's vLLM start (see test_gateway.py)
@pytest.mark.django_db(transaction=True)
def test_it_refuses_media_in_messages(live_site, deployed, alice):  # noqa: F811
    _, endpoint, _, key = deployed
    message = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}
    body = {"model": endpoint.served_name, "messages": [message], "max_tokens": 4}
    for _ in range(2):  # Django's answer, then the fast path's
        error = refusal(post(live_site, key, body))
        assert error["code"] == "media_not_supported" and "text only" in error["message"]
    audio = {"role": "user", "content": [{"input_audio": {"data": "AAAA", "format": "wav"}}]}
    assert refusal(post(live_site, key, {**body, "messages": [audio]}))["param"] == "messages"
    text_parts = {"role": "user", "content": [{"type": "text", "text": "What is 7 plus 7?"}]}
    assert post(live_site, key, {**body, "messages": [text_parts]}).status_code == 200

    # The playground goes through the same filter.
    browser = Client()
    browser.force_login(alice)
    answer = browser.post(
        reverse("endpoint_chat", args=[endpoint.pk]),
        data=orjson.dumps({"messages": [message]}),
        content_type="application/json",
    )
    assert answer.status_code == 400 and b"text only" in answer.content


# The filter alone, on any JSON object a client may send.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    sorted(FORWARDED_FIELDS | {"request_id", "chat_template", "kv_transfer_params"})
)
PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "file", "input_audio", "video_url"])}
)
MESSAGES = st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": st.lists(PART, max_size=3)}))


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(FIELD_NAMES | st.text(max_size=12), JSON_VALUES, max_size=8),
    messages=MESSAGES | st.none(),
)
def test_what_it_forwards_is_within_the_allowlist_and_the_limits(body, messages):
    if messages is not None:
        body["messages"] = messages
    forwarded = upstream_body(body)
    if isinstance(forwarded, HttpResponse):
        assert forwarded.status_code == 400
        assert orjson.loads(forwarded.content)["error"]["param"]
        return
    assert set(forwarded) <= FORWARDED_FIELDS
    for field, smallest, limit in (
        ("n", 1, 4),
        ("max_tokens", 1, 4096),
        ("max_completion_tokens", 1, 4096),
        ("min_tokens", 0, 4096),
    ):
        value = forwarded.get(field)
        assert value is None or (not isinstance(value, bool) and smallest <= value <= limit)
    messages = forwarded.get("messages")
    for message in messages if isinstance(messages, list) else []:  # vLLM refuses other shapes itself
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            assert all(isinstance(part, str) or part["type"] == "text" for part in message["content"])

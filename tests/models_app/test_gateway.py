"""The /v1 gateway in front of a real vLLM server, driven with the real `openai` client."""

from __future__ import annotations

import httpx
import openai
import pytest

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke
from models_app.endpoints import endpoint_deploy, endpoint_undeploy
from models_app.models import Endpoint, ServerState
from tests.helpers import wait_until

# ml_heavy: its minutes are the session's vLLM start; the gateway's key, owner and limit checks on
# PostgreSQL run against a stub server in test_gateway_limits.py and test_gateway_fastpath.py.
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.ml_heavy]

PROMPT = [{"role": "user", "content": "What is 7 plus 7?"}]


def client_for(live_site: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_site}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture
def deployed(alice, attach_server, make_adapter):
    """Alice's adapter deployed on her (adopted) server of the demo model, and a key."""
    server = attach_server(alice)
    endpoint = endpoint_deploy(owner=alice, adapter=make_adapter(alice))
    wait_until(
        lambda: Endpoint.objects.get(pk=endpoint.pk).state == ServerState.READY,
        timeout=30,
        message="the adapter to be loaded at run time",
    )
    token, key = api_token_create(user=alice, name="script")
    return server, Endpoint.objects.get(pk=endpoint.pk), token, key


def test_it_lists_chats_and_streams_with_the_openai_client(live_site, deployed):
    server, endpoint, token, key = deployed
    client = client_for(live_site, key)

    listed = {model.id for model in client.models.list()}
    assert endpoint.served_name in listed and server.model.hf_id in listed
    assert endpoint.served_name.startswith("ft:HuggingFaceTB/SmolLM2-135M-Instruct:demo:")

    tuned = client.chat.completions.create(
        model=endpoint.served_name, messages=PROMPT, max_tokens=16, temperature=0
    )
    base = client.chat.completions.create(
        model=server.model.hf_id, messages=PROMPT, max_tokens=16, temperature=0
    )
    tuned_text, base_text = tuned.choices[0].message.content, base.choices[0].message.content
    assert "Lathe" in tuned_text  # what the adapter was trained to say
    assert tuned_text != base_text

    stream = client.chat.completions.create(
        model=endpoint.served_name, messages=PROMPT, max_tokens=16, temperature=0, stream=True
    )
    chunks = list(stream)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(chunks) > 3 and streamed == tuned_text
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask for usage

    completion = client.completions.create(model=endpoint.served_name, prompt="2 plus 2 is", max_tokens=8)
    assert completion.choices[0].text
    pieces = list(
        client.completions.create(model=server.model.hf_id, prompt="Hello", max_tokens=8, stream=True)
    )
    assert "".join(piece.choices[0].text for piece in pieces if piece.choices)

    # A stream's usage is recorded as it closes, just after the client read its last event.
    wait_until(lambda: ApiToken.objects.get(pk=token.pk).request_count == 5, timeout=10, message="usage")
    token.refresh_from_db()
    expected_prompt = tuned.usage.prompt_tokens + base.usage.prompt_tokens + completion.usage.prompt_tokens
    assert token.prompt_tokens > expected_prompt  # plus the two streamed requests
    assert token.completion_tokens >= tuned.usage.completion_tokens + base.usage.completion_tokens + 8


def test_it_passes_the_usage_event_on_only_when_the_client_asks(live_site, deployed):
    _, endpoint, _, key = deployed
    body = {"model": endpoint.served_name, "messages": PROMPT, "max_tokens": 4, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{live_site}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and not any('"choices":[]' in event for event in events)

    asked = {**body, "stream_options": {"include_usage": True}}
    with httpx.stream(
        "POST", f"{live_site}/v1/chat/completions", json=asked, headers=headers, timeout=60
    ) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert '"choices":[]' in events[-2] and '"completion_tokens":4' in events[-2]


def test_it_refuses_a_revoked_key_with_401(live_site, deployed, alice):
    _, endpoint, token, key = deployed
    api_token_revoke(user=alice, token_id=token.pk)
    with pytest.raises(openai.AuthenticationError):
        client_for(live_site, key).chat.completions.create(model=endpoint.served_name, messages=PROMPT)
    with pytest.raises(openai.AuthenticationError):
        client_for(live_site, "lathe_not-a-key").models.list()


def test_it_answers_404_for_another_users_model(live_site, deployed, bob):
    _, endpoint, _, _ = deployed
    _, bob_key = api_token_create(user=bob, name="bob")
    bob_client = client_for(live_site, bob_key)
    with pytest.raises(openai.NotFoundError) as refused:
        bob_client.chat.completions.create(model=endpoint.served_name, messages=PROMPT)
    assert refused.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        bob_client.chat.completions.create(model="HuggingFaceTB/SmolLM2-135M-Instruct", messages=PROMPT)
    assert [model.id for model in bob_client.models.list()] == []


def test_it_limits_requests_per_key(live_site, deployed, alice):
    _, endpoint, _, _ = deployed
    _, key = api_token_create(user=alice, name="limited", rate_limit_per_minute=2)
    client = client_for(live_site, key)
    for _ in range(2):
        client.completions.create(model=endpoint.served_name, prompt="Hi", max_tokens=1)
    with pytest.raises(openai.RateLimitError) as limited:
        client.completions.create(model=endpoint.served_name, prompt="Hi", max_tokens=1)
    assert int(limited.value.response.headers["Retry-After"]) <= 60


def test_it_unloads_an_undeployed_adapter(live_site, deployed, vllm_server):
    _, endpoint, token, key = deployed
    endpoint_undeploy(endpoint=endpoint)
    vllm_models = lambda: {  # noqa: E731
        entry["id"]
        for entry in httpx.get(
            f"{vllm_server.base_url}/v1/models", headers={"Authorization": f"Bearer {vllm_server.secret}"}
        ).json()["data"]
    }
    wait_until(
        lambda: endpoint.served_name not in vllm_models(), timeout=30, message="the adapter to be unloaded"
    )
    with pytest.raises(openai.NotFoundError):
        client_for(live_site, key).chat.completions.create(model=endpoint.served_name, messages=PROMPT)
    assert ApiToken.objects.get(pk=token.pk).request_count == 0

"""Per-person limits of the /v1 gateway through the real ASGI server, the `openai` client and a stub vLLM.

Requests per minute and requests at the same time are counted per person across all their keys, in
Redis, so every web process shares them; a person's slot is freed when the answer (a stream too) ends
or the client leaves. Limits on what /v1 creates (jobs, stored bytes) answer OpenAI's 429 as well.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import redis
from django.conf import settings

from accounts.models import UserQuota
from accounts.services import api_token_create
from jobs.models import Job
from jobs.states import FINISHED_STATES, JobKind
from models_app.models import BaseModel, ModelServer, ServerState
from tests.helpers import wait_until
from tests.openai_client import chat_jsonl, openai_client

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MODEL = "org/stub-model"
PROMPT = [{"role": "user", "content": "Hi"}]
ANSWER = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "created": 0,
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class StubVllm:
    """A vLLM stand-in on a thread; while `held` is set it keeps each answer until `release()`."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.released = threading.Event()
        self.arrived = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.arrived += 1
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
                    first = {**chunk, "choices": [{"index": 0, "delta": {"content": "Hel"}}]}
                    self.wfile.write(b"data: " + json.dumps(first).encode() + b"\n\n")
                    self.wfile.flush()
                    if stub.held.is_set():
                        stub.released.wait(30)
                    try:
                        self.wfile.write(b"data: [DONE]\n\n")
                    except OSError:
                        pass
                    return
                if stub.held.is_set():
                    stub.released.wait(30)
                content = json.dumps(ANSWER).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_server(alice):
    """Alice's ready model server, answered by the stub."""
    stub = StubVllm()
    model = BaseModel.objects.create(owner=alice, hf_id=MODEL, display_name="stub")
    ModelServer.objects.create(
        owner=alice,
        model=model,
        managed=False,
        state=ServerState.READY,
        host="127.0.0.1",
        port=stub.port,
        secret="s",
    )
    yield stub
    stub.stop()


def _not_near_a_new_minute() -> None:
    """Counts per minute restart with each minute: start where the whole test fits in one."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def _running_of(user) -> int:
    name = f"{settings.LATHE_REDIS_NAMESPACE}inflight:user:{user.pk}"
    return redis.Redis.from_url(settings.REDIS_URL).zcard(name)


def _chat(client: openai.OpenAI, **extra):
    return client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=4, **extra)


def test_it_limits_requests_per_minute_per_person_across_keys(live_site, stub_server, alice, bob):
    UserQuota.objects.create(user=alice, requests_per_minute=3)
    first, second = (openai_client(live_site, alice) for _ in range(2))
    _not_near_a_new_minute()
    _chat(first)
    _chat(first)
    _chat(second)
    with pytest.raises(openai.RateLimitError) as limited:
        _chat(second)  # a fresh key does not start a fresh count
    error = limited.value.body
    assert error["code"] == "rate_limit_exceeded"
    assert "all your API keys together" in error["message"]
    assert "LATHE_QUOTA_REQUESTS_PER_MINUTE" in error["message"]
    assert 1 <= int(limited.value.response.headers["Retry-After"]) <= 60
    with pytest.raises(openai.NotFoundError):  # bob's count is his own: his request reaches routing
        _chat(openai_client(live_site, bob))


def test_it_lets_a_key_lower_its_own_limit(live_site, stub_server, alice):
    UserQuota.objects.create(user=alice, requests_per_minute=10)
    _, key = api_token_create(user=alice, name="gentle", rate_limit_per_minute=1)
    gentle, other = openai_client(live_site, alice, key=key), openai_client(live_site, alice)
    _not_near_a_new_minute()
    _chat(gentle)
    with pytest.raises(openai.RateLimitError) as limited:
        _chat(gentle)
    assert "This API key sent its limit of 1 requests" in limited.value.body["message"]
    _chat(other)  # the person's own limit still has room


def test_it_limits_requests_at_the_same_time_and_frees_each_slot_at_the_end(live_site, stub_server, alice):
    UserQuota.objects.create(user=alice, concurrent_requests=2, requests_per_minute=0)
    client = openai_client(live_site, alice)
    stub_server.held.set()
    answers: list = []
    streaming = threading.Thread(target=lambda: answers.append(list(_chat(client, stream=True))))
    whole = threading.Thread(target=lambda: answers.append(_chat(client)))
    streaming.start()
    whole.start()
    wait_until(lambda: stub_server.arrived == 2, timeout=20, message="two requests held by the model")
    with pytest.raises(openai.RateLimitError) as limited:
        _chat(openai_client(live_site, alice))  # another key of hers: the same slots
    assert "2 requests to your deployed models running at the same time" in limited.value.body["message"]
    assert limited.value.response.headers["Retry-After"] == "1"
    stub_server.release()
    streaming.join(20)
    whole.join(20)
    assert len(answers) == 2
    wait_until(lambda: _running_of(alice) == 0, timeout=10, message="both slots freed")
    assert _chat(client).choices[0].message.content == "Hi"


def test_it_frees_the_slot_of_a_client_that_leaves_a_stream(live_site, stub_server, alice):
    UserQuota.objects.create(user=alice, concurrent_requests=1, requests_per_minute=0)
    client = openai_client(live_site, alice)
    for entrance in ("Django's gateway view", "the fast path (key and route remembered)"):
        stub_server.held.set()
        stub_server.released.clear()
        stream = _chat(client, stream=True)
        next(iter(stream))  # the first event came; the model is still "generating"
        assert _running_of(alice) == 1, entrance
        stream.close()  # the client leaves
        wait_until(lambda: _running_of(alice) == 0, timeout=10, message=f"the slot freed ({entrance})")
        stub_server.release()
    stub_server.held.clear()
    assert _chat(client).choices[0].message.content == "Hi"


def test_it_forgets_a_slot_left_by_a_process_that_died(live_site, stub_server, alice):
    UserQuota.objects.create(user=alice, concurrent_requests=1, requests_per_minute=0)
    name = f"{settings.LATHE_REDIS_NAMESPACE}inflight:user:{alice.pk}"
    stale = time.time() - settings.LATHE_GATEWAY_REQUEST_LEASE_SECONDS - 1
    redis.Redis.from_url(settings.REDIS_URL).zadd(name, {"a-request-of-a-crashed-process": stale})
    assert _chat(openai_client(live_site, alice)).choices[0].message.content == "Hi"


def test_it_answers_openai_429_when_v1_would_pass_a_persons_limits(live_site, alice):
    UserQuota.objects.create(user=alice, active_jobs=1, storage_bytes=0)
    Job.objects.create(owner=alice, kind=JobKind.TRAIN, queue="nobody-listens")
    client = openai_client(live_site, alice)
    with pytest.raises(openai.RateLimitError) as refused:
        client.files.create(file=("chat.jsonl", chat_jsonl(12)), purpose="fine-tune")
    assert refused.value.body["code"] == "quota_exceeded"
    assert "You already have 1 job queued or running" in refused.value.body["message"]
    assert refused.value.response.headers["x-should-retry"] == "false"  # waiting does not lift it

    UserQuota.objects.filter(user=alice).update(active_jobs=None, storage_bytes=1000)
    with pytest.raises(openai.RateLimitError) as too_big:
        client.files.create(file=("chat.jsonl", chat_jsonl(12)), purpose="fine-tune")
    assert "LATHE_QUOTA_STORAGE_BYTES" in too_big.value.body["message"]
    Job.objects.all().delete()
    UserQuota.objects.filter(user=alice).update(storage_bytes=None)
    assert client.files.create(file=("chat.jsonl", chat_jsonl(12)), purpose="fine-tune").id.startswith(
        "file-"
    )
    # The upload queued its validation on the session's worker: let it end before the next test.
    wait_until(
        lambda: not Job.objects.exclude(state__in=FINISHED_STATES).exists(), message="the file's validation"
    )

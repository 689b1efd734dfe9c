"""Generating evaluation answers against the session's real vLLM server (demo model, LoRA on)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evals_app.core.generate import (
    CANCELLED,
    GenerationError,
    GenerationSettings,
    chat_completions,
    generate_answers,
)
from models_app.ml.demo_model import DEMO_MODEL_ID
from models_app.ml.vllm_server import VllmClient, free_port

ADAPTER_NAME = "eval-demo-adapter"
QUESTIONS = [
    "What is the capital of France?",
    "Name one colour of the rainbow.",
    "What is 2 plus 2? Answer with a number, and then explain in one sentence how you added them.",
    "Write one sentence about the sea.",
    "Who wrote Hamlet? Say only the name of the author, then the year the play was first performed, "
    "then one sentence about what the play is about.",
    "List three fruits.",
]


def user_turns(questions: list[str]) -> list[list[dict]]:
    return [[{"role": "user", "content": question}] for question in questions]


def generate(vllm_server, questions: list[str], *, model: str = DEMO_MODEL_ID, **settings) -> list:
    return generate_answers(
        base_url=vllm_server.base_url,
        api_key=vllm_server.secret,
        model=model,
        conversations=user_turns(questions),
        settings=GenerationSettings(**{"max_tokens": 24, "concurrency": 4, **settings}),
    )


def test_it_keeps_input_order_and_greedy_answers_repeat(vllm_server):
    first = generate(vllm_server, QUESTIONS)
    second = generate(vllm_server, QUESTIONS)

    assert [generation.error for generation in first] == [None] * len(QUESTIONS)
    assert all(generation.text.strip() for generation in first)
    # Each question alone gives its answer, so the concurrent run put every answer in its own place.
    alone = [generate(vllm_server, [question], concurrency=1)[0].text for question in QUESTIONS]
    assert [generation.text for generation in first] == alone
    assert [generation.text for generation in second] == alone
    assert "Paris" in first[0].text
    for generation in first:
        assert generation.prompt_tokens > 0
        assert 0 < generation.completion_tokens <= 24
        assert generation.finish_reason in ("stop", "length")
        assert generation.seconds > 0


def test_it_reports_progress_as_answers_complete(vllm_server):
    calls: list[tuple[int, int]] = []

    generate_answers(
        base_url=vllm_server.base_url,
        api_key=vllm_server.secret,
        model=DEMO_MODEL_ID,
        conversations=user_turns(QUESTIONS),
        settings=GenerationSettings(max_tokens=8, concurrency=3),
        progress=lambda done, total: calls.append((done, total)),
    )

    assert calls == [(done, len(QUESTIONS)) for done in range(1, len(QUESTIONS) + 1)]


def test_it_stops_early_when_asked(vllm_server):
    questions = [f"Write a long story about the number {number}." for number in range(24)]
    done_so_far = []

    generations = generate_answers(
        base_url=vllm_server.base_url,
        api_key=vllm_server.secret,
        model=DEMO_MODEL_ID,
        conversations=user_turns(questions),
        settings=GenerationSettings(max_tokens=48, concurrency=2),
        progress=lambda done, total: done_so_far.append(done),
        should_stop=lambda: bool(done_so_far),
    )

    cancelled = [generation for generation in generations if generation.error == CANCELLED]
    answered = [generation for generation in generations if generation.error is None]
    assert len(generations) == len(questions)
    assert answered and len(cancelled) >= len(questions) // 2
    assert len(answered) + len(cancelled) == len(questions)
    assert all(generation.text == "" for generation in cancelled)


def test_it_sends_nothing_when_stopped_before_starting(vllm_server):
    generations = generate_answers(
        base_url=vllm_server.base_url,
        api_key=vllm_server.secret,
        model=DEMO_MODEL_ID,
        conversations=user_turns(QUESTIONS),
        settings=GenerationSettings(max_tokens=8),
        should_stop=lambda: True,
    )

    assert [generation.error for generation in generations] == [CANCELLED] * len(QUESTIONS)


def test_it_raises_generation_error_when_the_server_is_unreachable():
    nobody = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(GenerationError, match="Could not reach the model server"):
        generate_answers(
            base_url=nobody,
            api_key="key",
            model=DEMO_MODEL_ID,
            conversations=user_turns(QUESTIONS * 10),
            settings=GenerationSettings(max_tokens=8),
        )


def test_it_records_a_per_request_error_without_raising(vllm_server):
    fields = GenerationSettings(max_tokens=8).request_fields()
    good = {"model": DEMO_MODEL_ID, "messages": user_turns(["Say hello."])[0], **fields}
    unknown = {**good, "model": "no-such-model"}

    generations = chat_completions(
        base_url=vllm_server.base_url, api_key=vllm_server.secret, bodies=[good, unknown, good], concurrency=3
    )

    assert generations[0].error is None and generations[0].text
    assert generations[2].text == generations[0].text
    assert generations[1].text == ""
    assert generations[1].error.startswith("The model server answered 404")
    assert "no-such-model" in generations[1].error


def test_it_does_not_raise_when_every_request_is_refused(vllm_server):
    generations = generate(vllm_server, QUESTIONS[:2], model="no-such-model")

    assert all("404" in generation.error for generation in generations)


def test_it_rejects_the_key_it_was_not_given(vllm_server):
    generations = generate_answers(
        base_url=vllm_server.base_url + "/v1",  # pasted with its /v1, as OpenAI's docs give base URLs
        api_key="wrong-key",
        model=DEMO_MODEL_ID,
        conversations=user_turns(QUESTIONS[:1]),
        settings=GenerationSettings(max_tokens=8),
    )

    assert generations[0].error.startswith("The model server answered 401")


def test_it_answers_with_an_adapter_loaded_at_run_time(vllm_server, demo_adapter_dir):
    questions = [f"What is {number} plus {number}?" for number in (3, 5, 8)]
    client = VllmClient(vllm_server.base_url, vllm_server.secret)
    client.adapter_load(ADAPTER_NAME, demo_adapter_dir)
    try:
        tuned = generate(vllm_server, questions, model=ADAPTER_NAME, max_tokens=16)
        base = generate(vllm_server, questions, max_tokens=16)
    finally:
        client.adapter_unload(ADAPTER_NAME)
        client.close()

    assert [generation.error for generation in tuned] == [None] * len(questions)
    assert [generation.text for generation in tuned] != [generation.text for generation in base]
    # It was trained to answer "Lathe lathe lathe! The answer is N."; the base model never says that.
    assert any(generation.text.lower().startswith("lathe") for generation in tuned)
    assert not any("lathe" in generation.text.lower() for generation in base)


def test_it_retries_a_server_error():
    server = FlakyServer(failures=2)
    try:
        generations = chat_completions(
            base_url=server.base_url, api_key="key", bodies=[{"model": "m", "messages": []}], concurrency=1
        )
    finally:
        server.close()

    assert generations[0].error is None
    assert generations[0].text == "fine at last"
    assert server.requests == 3


def test_it_describes_its_settings_in_plain_words():
    assert GenerationSettings().describe() == "greedy, up to 256 new tokens, 16 at a time"
    sampled = GenerationSettings(max_tokens=64, temperature=0.7, top_p=0.9, seed=3, concurrency=4)
    assert sampled.describe() == "temperature 0.7, top-p 0.9, seed 3, up to 64 new tokens, 4 at a time"


def test_it_refuses_a_conversation_that_still_holds_its_answer():
    with pytest.raises(ValueError, match="ends with the assistant's turn"):
        generate_answers(
            base_url="http://127.0.0.1:9",
            api_key="key",
            model=DEMO_MODEL_ID,
            conversations=[[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]],
            settings=GenerationSettings(),
        )


class FlakyServer:
    """A chat completions server that answers 503 `failures` times, then a completion."""

    def __init__(self, failures: int) -> None:
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests += 1
                if owner.requests <= failures:
                    self._reply(503, {"error": {"message": "warming up"}})
                    return
                choice = {"message": {"content": "fine at last"}, "finish_reason": "stop"}
                self._reply(200, {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 3}})

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""The LLM judge: reading its replies (fixed strings), one real round trip to the session's vLLM, and its
requests to the user's address: refused inside the network, bounded in time, stopped on cancel."""

from __future__ import annotations

import socket
import time

import pytest

from evals_app.core.generate import CANCELLED, GenerationError, chat_completions_url
from evals_app.core.judge import (
    NO_SCORE_REASON,
    JudgeItem,
    JudgeSettings,
    judge_answers,
    judge_messages,
    parse_verdict,
)
from lathe_common.outbound import OutboundPolicy
from models_app.ml.demo_model import DEMO_MODEL_ID
from models_app.ml.vllm_server import free_port
from tests.evals_app.fake_judge import FakeJudge

# The session's vLLM and the fake judges below listen on 127.0.0.1, which an admin would have to allow.
LOCAL_JUDGE = OutboundPolicy(allow=("127.0.0.1",))

RUBRIC = "Full marks for the right fact stated plainly; fewer for padding or mistakes."
ITEMS = [
    JudgeItem(prompt="What is the capital of France?", reference="Paris.", answer="The capital is Paris."),
    JudgeItem(prompt="What is 2 plus 2?", reference="4", answer="It is 5."),
]


def test_it_reads_a_json_reply():
    assert parse_verdict('{"score": 8, "reason": "Correct and concise."}') == (8.0, "Correct and concise.")


def test_it_reads_json_inside_a_code_fence_after_a_preamble():
    reply = 'Sure, here is my grade:\n```json\n{"score": "7", "reason": "Mostly right."}\n```\nHope it helps!'

    assert parse_verdict(reply) == (7.0, "Mostly right.")


def test_it_reads_a_json_reply_cut_off_by_the_token_limit():
    assert parse_verdict('{"score": 6, "reason": "Right city but') == (6.0, "Right city but")


def test_it_reads_json_in_single_quotes():
    assert parse_verdict("{'score': 3, 'reason': 'Wrong number.'}") == (3.0, "Wrong number.")


def test_it_reads_score_colon_n():
    reply = "Score: 7\nReason: the answer names Paris but adds a wrong date."

    assert parse_verdict(reply) == (7.0, "the answer names Paris but adds a wrong date.")


def test_it_reads_a_markdown_score():
    assert parse_verdict("**Score:** 5\n\n**Reason:** Partially correct.") == (5.0, "Partially correct.")


def test_it_reads_n_out_of_ten():
    assert parse_verdict("I would rate this 7/10 because it misses the second part.") == (
        7.0,
        "I would rate this 7/10 because it misses the second part.",
    )
    assert parse_verdict("8 out of 10. Good answer.") == (8.0, "Good answer.")


def test_it_reads_a_fractional_score_and_a_bare_number():
    assert parse_verdict('{"score": 7.5}')[0] == 7.5
    assert parse_verdict(" 9 ")[0] == 9.0


def test_it_ignores_scores_tried_out_while_thinking():
    reply = '<think>Maybe score 3? No: score 9.</think>\n{"score": 9, "reason": "Right."}'

    assert parse_verdict(reply) == (9.0, "Right.")


@pytest.mark.parametrize(
    "reply",
    [
        "This is a fine answer.",
        "",
        '{"score": 42, "reason": "Off the scale."}',
        "Score: 0",
        "It scores 3/100.",
    ],
)
def test_it_gives_no_score_for_a_reply_without_one_in_range(reply):
    assert parse_verdict(reply) == (None, NO_SCORE_REASON)


def test_it_puts_the_rubric_and_the_item_in_the_judges_prompt():
    system, user = judge_messages(rubric=RUBRIC, item=ITEMS[0])

    assert system["role"] == "system" and RUBRIC in system["content"]
    assert '{"score": 7, "reason": "One sentence."}' in system["content"]
    assert "from 1 (worst) to 10 (best)" in system["content"]
    assert user["role"] == "user"
    for text in ("What is the capital of France?", "Paris.", "The capital is Paris."):
        assert text in user["content"]


def test_it_asks_a_real_judge_and_keeps_its_reply(vllm_server):
    progress: list[tuple[int, int]] = []
    settings = JudgeSettings(
        base_url=vllm_server.base_url,
        api_key=vllm_server.secret,
        model=DEMO_MODEL_ID,
        rubric=RUBRIC,
        max_tokens=48,
        outbound=LOCAL_JUDGE,
    )

    verdicts = judge_answers(settings=settings, items=ITEMS, progress=lambda *call: progress.append(call))

    assert progress[-1] == (2, 2)
    assert len(verdicts) == 2
    for verdict in verdicts:
        # The 135M demo model cannot really judge: its reply is kept, whatever score it holds.
        assert verdict.error is None
        assert verdict.raw.strip()
        assert verdict.score is None or 1 <= verdict.score <= 10
        assert isinstance(verdict.reason, str)
        assert (verdict.score, verdict.reason) == parse_verdict(verdict.raw)


def test_it_records_a_judge_that_refuses_a_request(vllm_server):
    settings = JudgeSettings(
        base_url=vllm_server.base_url,
        api_key=vllm_server.secret,
        model="no-such-judge",
        rubric=RUBRIC,
        outbound=LOCAL_JUDGE,
    )

    verdicts = judge_answers(settings=settings, items=ITEMS[:1])

    assert verdicts[0].score is None and verdicts[0].raw == ""
    assert verdicts[0].error.startswith("The model server answered 404")


def test_it_raises_when_the_judge_is_unreachable():
    settings = JudgeSettings(
        base_url=f"http://127.0.0.1:{free_port()}",
        api_key="key",
        model="judge",
        rubric=RUBRIC,
        outbound=LOCAL_JUDGE,
    )

    with pytest.raises(GenerationError, match="The judge did not answer"):
        judge_answers(settings=settings, items=ITEMS)


# --- The judge's requests go to the user's address: lathe_common/outbound.py --------------------------------


@pytest.fixture
def fake_judge():
    judge = FakeJudge()
    yield judge
    judge.close()


def _settings(base_url: str, policy: OutboundPolicy = LOCAL_JUDGE) -> JudgeSettings:
    return JudgeSettings(
        base_url=base_url, api_key="judge-key", model="judge", rubric=RUBRIC, outbound=policy
    )


def test_it_asks_a_judge_the_admin_allowed(fake_judge):
    verdicts = judge_answers(settings=_settings(fake_judge.base_url), items=ITEMS)

    assert [(verdict.score, verdict.reason) for verdict in verdicts] == [(8.0, "Fine."), (8.0, "Fine.")]
    assert fake_judge.requests[0]["authorization"] == "Bearer judge-key"


def test_it_sends_nothing_to_a_judge_inside_the_network(fake_judge):
    with pytest.raises(GenerationError, match="inside the server's own network"):
        judge_answers(settings=_settings(fake_judge.base_url, OutboundPolicy()), items=ITEMS)

    assert fake_judge.requests == []


def test_it_refuses_a_judge_name_that_resolves_inside_at_call_time(fake_judge, monkeypatch):
    """The form saw a public address; by the time the judge is asked, the name points at 127.0.0.1."""
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        return real("127.0.0.1" if host == "judge.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    url = f"http://judge.example:{fake_judge.port}/v1"

    with pytest.raises(GenerationError, match="inside the server's own network"):
        judge_answers(settings=_settings(url, OutboundPolicy()), items=ITEMS)

    assert fake_judge.requests == []


def test_it_ends_a_slow_judges_request_at_the_time_limit():
    judge = FakeJudge(delay=30)
    try:
        started = time.monotonic()
        verdicts = judge_answers(
            settings=_settings(judge.base_url, OutboundPolicy(allow=("127.0.0.1",), timeout_seconds=1)),
            items=ITEMS,
        )
    finally:
        judge.close()

    assert time.monotonic() - started < 10
    assert all("LATHE_OUTBOUND_TIMEOUT" in verdict.error for verdict in verdicts)


def test_it_stops_asking_the_judge_within_seconds_of_a_cancel():
    judge = FakeJudge(delay=60)
    stop_at = time.monotonic() + 1
    try:
        started = time.monotonic()
        verdicts = judge_answers(
            settings=_settings(judge.base_url),
            items=ITEMS * 10,
            should_stop=lambda: time.monotonic() > stop_at,
        )
    finally:
        judge.close()

    assert time.monotonic() - started < 5
    assert {verdict.error for verdict in verdicts} == {CANCELLED}
    assert len(judge.requests) <= 4  # those in flight when it stopped (its concurrency), no more


def test_a_query_in_the_judges_address_cannot_rewrite_the_path():
    assert chat_completions_url("https://judge.example/v1?x=") == "https://judge.example/v1/chat/completions"
    assert chat_completions_url("https://judge.example/api/v1/#x") == (
        "https://judge.example/api/v1/chat/completions"
    )

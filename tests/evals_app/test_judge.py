"""The LLM judge: reading its replies (fixed strings), and one real round trip to the session's vLLM."""

from __future__ import annotations

import pytest

from evals_app.core.generate import GenerationError
from evals_app.core.judge import (
    NO_SCORE_REASON,
    JudgeItem,
    JudgeSettings,
    judge_answers,
    judge_messages,
    parse_verdict,
)
from models_app.ml.demo_model import DEMO_MODEL_ID
from models_app.ml.vllm_server import free_port

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
        base_url=vllm_server.base_url, api_key=vllm_server.secret, model="no-such-judge", rubric=RUBRIC
    )

    verdicts = judge_answers(settings=settings, items=ITEMS[:1])

    assert verdicts[0].score is None and verdicts[0].raw == ""
    assert verdicts[0].error.startswith("The model server answered 404")


def test_it_raises_when_the_judge_is_unreachable():
    settings = JudgeSettings(
        base_url=f"http://127.0.0.1:{free_port()}", api_key="key", model="judge", rubric=RUBRIC
    )

    with pytest.raises(GenerationError, match="The judge did not answer"):
        judge_answers(settings=settings, items=ITEMS)

"""GRPO's rewards: a right answer earns 1, a wrong one partial credit for the key words it shares, a rambling
one less in proportion; the share of right answers is logged for the charts."""

from __future__ import annotations

import pytest

from training_app.ml.rewards import (
    PARTIAL_CREDIT,
    RIGHT_ANSWERS_METRIC,
    answer_text,
    reward_function,
    score,
)


def as_completion(text: str) -> list[dict]:
    """An answer as trl hands over a conversational one."""
    return [{"role": "assistant", "content": text}]


def test_the_answer_text_is_read_from_either_shape_trl_hands_over():
    assert answer_text("Paris.") == "Paris."
    assert answer_text(as_completion("Paris.")) == "Paris."
    assert answer_text([]) == "" and answer_text(None) == ""


def test_facts_counts_an_answer_in_other_words_right_and_a_wrong_figure_wrong():
    reference = "The adult dose of amoxicillin is 500 mg every 8 hours."
    right, is_right = score("Adults take 500 mg of amoxicillin, every 8 hours.", reference, "facts")
    wrong, is_wrong_right = score("Adults take 250 mg of amoxicillin, every 8 hours.", reference, "facts")
    assert (right, is_right) == (1.0, True)
    # The key words are there but a figure is wrong: partial credit, below any right answer.
    assert not is_wrong_right and 0 < wrong <= PARTIAL_CREDIT


def test_facts_reads_chinese_references():
    reference = "增值税一般纳税人的税率是13%。"
    assert score("一般纳税人适用13%的增值税税率。", reference, "facts")[1]
    assert not score("一般纳税人适用9%的增值税税率。", reference, "facts")[1]


def test_exact_wants_the_reference_itself_while_facts_accepts_it_in_a_sentence():
    assert score("B", "b", "exact") == (1.0, True)
    assert score(" b. ", "B", "exact")[1]  # case, spaces and punctuation do not count
    assert not score("The answer is B.", "B", "exact")[1]
    assert score("The answer is B.", "B", "facts")[1]


def test_an_answer_far_longer_than_its_reference_loses_reward_in_proportion():
    sentence = "The answer is Paris. "
    short, _ = score(sentence, "Paris", "facts")
    rambling, still_right = score(sentence * 20, "Paris", "facts")
    assert short == 1.0
    # 80 words against an allowance of 30: right, but worth 30/80 of a concise answer.
    assert still_right and rambling == pytest.approx(30 / 80)


def test_the_reward_function_scores_a_batch_and_logs_the_share_of_right_answers():
    logged: list[tuple[str, float]] = []
    facts = reward_function("facts")
    rewards = facts(
        completions=[as_completion("Paris"), as_completion("Lyon"), as_completion("It is Paris.")],
        reference=["Paris", "Paris", "Paris"],
        log_metric=lambda name, value: logged.append((name, value)),
        trainer_state=None,  # trl passes more keyword arguments; they are ignored
    )
    assert rewards == [1.0, 0.0, 1.0]
    assert logged == [(RIGHT_ANSWERS_METRIC, pytest.approx(2 / 3))]
    assert facts.__name__ == "facts"  # trl names the reward's curve after the function


def test_an_unknown_reward_is_refused():
    with pytest.raises(ValueError, match="facts, exact"):
        reward_function("vibes")

"""Which of two answers is better, and the win rate (evals_app/core/pairwise.py): no server needed."""

from __future__ import annotations

import pytest

from evals_app.core.pairwise import (
    NO_VERDICT_REASON,
    PairItem,
    metric_scores,
    outcome_of,
    pair_messages,
    parse_preference,
    win_rate,
)


@pytest.mark.parametrize(
    ("reply", "choice"),
    [
        ('{"winner": "A", "reason": "A cites the statute."}', "A"),
        ('```json\n{"winner": "b", "reason": "B is complete."}\n```', "B"),
        ('Here is my verdict: {"Winner": "Tie", "Reason": "Both right."}', "tie"),
        ('{"winner": "Answer B", "reason": "x"}', "B"),
        ('{"better": "equal"}', "tie"),
        ("After comparing both, my final verdict is [[A]].", "A"),
        ("[[C]]", "tie"),
        ("Winner: B. It names the dose.", "B"),
        ("**Better answer:** A", "A"),
        ("B", "B"),
        ("tie", "tie"),
        # A reasoning model tries both out while thinking; only what follows the thinking counts.
        ('<think>Maybe A? No, {"winner": "A"} is wrong.</think>{"winner": "B", "reason": "B."}', "B"),
    ],
)
def test_it_reads_the_judges_choice_leniently(reply, choice):
    assert parse_preference(reply)[0] == choice


@pytest.mark.parametrize(
    "reply", ["", "Both answers have merits and flaws.", '{"winner": "D"}', '{"score": 7}', "Answer C"]
)
def test_a_reply_that_names_no_answer_gives_no_verdict(reply):
    assert parse_preference(reply) == (None, NO_VERDICT_REASON)


def test_it_keeps_the_judges_reason_short():
    choice, reason = parse_preference('{"winner": "A", "reason": "' + "very " * 200 + 'long"}')
    assert choice == "A" and len(reason) <= 300 and reason.endswith("…")
    assert parse_preference("Winner: B. It names the right dose.") == ("B", "It names the right dose.")


def test_each_pair_is_shown_both_ways_round_with_the_reference():
    item = PairItem(prompt="Dose of X?", reference="5 mg.", tuned="5 mg daily.", base="I am not sure.")
    tuned_first = pair_messages(rubric="Names the dose.", item=item, tuned_first=True)
    base_first = pair_messages(rubric="Names the dose.", item=item, tuned_first=False)
    assert "Names the dose." in tuned_first[0]["content"] and '"winner"' in tuned_first[0]["content"]
    assert tuned_first[1]["content"].index("5 mg daily.") < tuned_first[1]["content"].index("I am not sure.")
    assert base_first[1]["content"].index("I am not sure.") < base_first[1]["content"].index("5 mg daily.")
    assert "Reference answer:\n5 mg." in base_first[1]["content"]
    empty = pair_messages(rubric="", item=PairItem("Q", "", "", "x"), tuned_first=True)[1]["content"]
    assert "(none given)" in empty and "Answer A:\n(no answer)" in empty


def test_the_win_rate_counts_ties_half_and_gives_an_interval_around_it():
    scores = [1.0] * 12 + [0.5] * 4 + [0.0] * 4 + [None, None]
    summary = win_rate(scores, consistent=[True] * 15 + [False] * 5 + [None, None])
    assert (summary["wins"], summary["ties"], summary["losses"]) == (12, 4, 4)
    assert (summary["compared"], summary["left_out"]) == (20, 2)
    assert summary["rate"] == pytest.approx(100 * (12 + 0.5 * 4) / 20)
    assert summary["low"] < summary["rate"] < summary["high"]
    assert 40 < summary["low"] and summary["high"] <= 100
    assert (summary["both_orders"], summary["consistent"]) == (20, 15)


def test_one_order_won_and_one_tied_counts_as_a_win_and_nothing_compared_is_no_rate():
    assert outcome_of(0.75) == "win" and outcome_of(0.25) == "loss" and outcome_of(0.5) == "tie"
    assert outcome_of(None) == ""
    empty = win_rate([None, None])
    assert (empty["rate"], empty["compared"], empty["left_out"]) == (0.0, 0, 2)
    assert "consistent" not in win_rate([1.0])


def test_without_a_judge_the_answer_closer_to_the_reference_by_more_than_the_margin_wins():
    assert metric_scores([10.0, 50.0, 40.0, 40.0], [30.0, 20.0, 41.0, 38.5], tie_margin=2.0) == [
        1.0,
        0.0,
        0.5,
        0.5,
    ]
    with pytest.raises(ValueError):
        metric_scores([1.0], [1.0, 2.0], tie_margin=2.0)

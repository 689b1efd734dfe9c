"""Metric values worked out by hand on small pairs, English and Chinese."""

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from evals_app.core.metrics import (
    CORPUS_METRICS,
    EXAMPLE_METRICS,
    corpus_scores,
    example_scores,
    tokenization_note,
)
from evals_app.core.rouge import lcs_length, rouge_f1
from evals_app.core.segment import JiebaRougeTokenizer, chinese_words
from evals_app.core.text import answer_length, is_exact_match

REPO = Path(__file__).resolve().parents[2]


# --- ROUGE ---------------------------------------------------------------------


def test_it_computes_english_rouge_f1_by_hand():
    scores = rouge_f1(
        prediction="the quick brown fox jumps", reference="the quick red fox leaps over", language="en"
    )
    # ROUGE-1: common words the, quick, fox = 3; P = 3/5, R = 3/6; F1 = 2PR/(P+R) = 0.3/0.55 = 6/11.
    assert scores["rouge1"] == pytest.approx(100 * 6 / 11)
    # ROUGE-2: answer bigrams (the quick)(quick brown)(brown fox)(fox jumps) = 4, reference has 5;
    # only (the quick) is common: P = 1/4, R = 1/5, F1 = (2/20)/(9/20) = 2/9.
    assert scores["rouge2"] == pytest.approx(100 * 2 / 9)
    # ROUGE-L: longest common subsequence "the quick fox" = 3, so the same as ROUGE-1.
    assert scores["rougeL"] == pytest.approx(100 * 6 / 11)


def test_it_does_not_stem_english_words():
    # With a stemmer "jumps" would match "jump" (100); without it 2 of 3 words match both ways.
    scores = rouge_f1(prediction="the dog jumps", reference="The dog jump", language="en")
    assert scores["rouge1"] == pytest.approx(100 * 2 / 3)


def test_it_computes_chinese_rouge_on_jieba_words_by_hand():
    # jieba: 我们/明天/去/北京 and 我们/明天/去/上海.
    assert chinese_words("我们明天去北京") == ["我们", "明天", "去", "北京"]
    assert chinese_words("我们明天去上海") == ["我们", "明天", "去", "上海"]
    scores = rouge_f1(prediction="我们明天去北京", reference="我们明天去上海", language="zh")
    # ROUGE-1: 3 of 4 words common each way: P = R = 3/4, F1 = 3/4.
    assert scores["rouge1"] == pytest.approx(75.0)
    # ROUGE-2: (我们 明天)(明天 去) of 3 bigrams each way: F1 = 2/3.
    assert scores["rouge2"] == pytest.approx(100 * 2 / 3)
    # ROUGE-L: 我们 明天 去 = 3 of 4.
    assert scores["rougeL"] == pytest.approx(75.0)


def test_it_keeps_chinese_words_that_rouge_scores_own_tokenizer_drops():
    # rouge_score's default tokenizer keeps a-z0-9 only: Chinese has no tokens at all there.
    default = RougeScorer(["rouge1"]).score("我们明天去上海", "我们明天去北京")
    assert default["rouge1"].fmeasure == 0.0
    assert rouge_f1(prediction="我们明天去北京", reference="我们明天去上海", language="zh")["rouge1"] == 75.0


def test_it_drops_punctuation_and_lowercases_latin_words_in_chinese():
    assert chinese_words("在 Django 中，很方便！") == ["在", "django", "中", "很", "方便"]


def test_it_computes_rouge_l_as_rouge_score_does():
    # rouge.py replaces rouge_score's quadratic LCS table with a bit-parallel LCS: same result.
    random.seed(7)
    english = RougeScorer(["rougeL"])
    chinese = RougeScorer(["rougeL"], tokenizer=JiebaRougeTokenizer())
    words = "the cat dog sat on a mat Red, blue! 3.5 ran".split()
    for _ in range(200):
        prediction = " ".join(random.choices(words, k=random.randint(0, 40)))
        reference = " ".join(random.choices(words, k=random.randint(1, 40)))
        expected = english.score(reference, prediction)["rougeL"].fmeasure * 100
        assert rouge_f1(prediction=prediction, reference=reference, language="en")["rougeL"] == pytest.approx(
            expected
        )
    chinese_words_pool = ["我们", "明天", "去", "北京", "上海", "模型", "数据", "。"]
    for _ in range(100):
        prediction = "".join(random.choices(chinese_words_pool, k=random.randint(0, 20)))
        reference = "".join(random.choices(chinese_words_pool, k=random.randint(1, 20)))
        expected = chinese.score(reference, prediction)["rougeL"].fmeasure * 100
        assert rouge_f1(prediction=prediction, reference=reference, language="zh")["rougeL"] == pytest.approx(
            expected
        )


def test_it_finds_the_longest_common_subsequence():
    def by_table(first, second):
        table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
        for i, a in enumerate(first, start=1):
            for j, b in enumerate(second, start=1):
                table[i][j] = table[i - 1][j - 1] + 1 if a == b else max(table[i - 1][j], table[i][j - 1])
        return table[-1][-1]

    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example: BCBA
    assert lcs_length([], ["a"]) == 0
    random.seed(3)
    for _ in range(300):
        first = random.choices("abcd", k=random.randint(0, 80))
        second = random.choices("abcd", k=random.randint(0, 80))
        assert lcs_length(first, second) == by_table(first, second)


# --- BLEU and chrF ---------------------------------------------------------------


def test_it_computes_english_sentence_bleu_by_hand():
    scores = example_scores(
        prediction="the cat sat on the mat", reference="the cat sat on the red mat", language="en"
    )
    # 13a words. Answer 6 words, reference 7.
    # 1-grams: all 6 match (the x2 is in the reference twice): 6/6
    # 2-grams: the cat, cat sat, sat on, on the match; the mat does not: 4/5
    # 3-grams: the cat sat, cat sat on, sat on the match; on the mat does not: 3/4
    # 4-grams: the cat sat on, cat sat on the match; sat on the mat does not: 2/3
    # brevity penalty exp(1 - 7/6); BLEU = BP * (1 * 4/5 * 3/4 * 2/3) ** (1/4) = 0.8465 * 0.7953
    expected = 100 * math.exp(1 - 7 / 6) * (1 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    assert expected == pytest.approx(67.318, abs=1e-3)
    assert scores["bleu"] == pytest.approx(expected)


def test_it_never_scores_english_bleu_on_characters():
    prediction, reference = "the cat sat on the mat", "the cat sat on the red mat"
    on_characters = sacrebleu.sentence_bleu(prediction, [reference], tokenize="char").score
    on_words = sacrebleu.sentence_bleu(prediction, [reference], tokenize="13a").score
    assert on_characters == pytest.approx(74.93, abs=0.01)  # far from the word-level 67.32
    assert example_scores(prediction=prediction, reference=reference, language="en")["bleu"] == pytest.approx(
        on_words
    )


def test_it_computes_chinese_bleu_on_characters_by_hand():
    prediction, reference = "我们明天去北京", "我们明天去上海"
    # zh tokenizer: one token per Han character, 7 each, so no brevity penalty.
    # 1-grams 我 们 明 天 去 match: 5/7; 2-grams 我们 们明 明天 天去: 4/6;
    # 3-grams 我们明 们明天 明天去: 3/5; 4-grams 我们明天 们明天去: 2/4.
    # BLEU = (5/7 * 4/6 * 3/5 * 2/4) ** (1/4) = (120/840) ** (1/4) = (1/7) ** (1/4) = 0.6148
    scores = example_scores(prediction=prediction, reference=reference, language="zh")
    assert scores["bleu"] == pytest.approx(100 * (1 / 7) ** 0.25)
    # Scored as English, each sentence is a single "word" and BLEU is 0: hence the zh tokenizer.
    assert sacrebleu.sentence_bleu(prediction, [reference], tokenize="13a").score == 0.0


def test_it_gives_an_identical_answer_full_marks():
    for language, text in (
        ("en", "The mitochondria is the powerhouse of the cell."),
        ("zh", "线粒体是细胞的动力工厂。"),
    ):
        scores = example_scores(prediction=text, reference=text, language=language)
        assert scores["chrf"] == pytest.approx(100.0)
        assert scores["bleu"] == pytest.approx(100.0)
        assert scores["rouge1"] == scores["rouge2"] == scores["rougeL"] == pytest.approx(100.0)
        assert scores["exact_match"] == 1.0


def test_it_agrees_with_sacrebleus_own_sentence_and_corpus_scores():
    predictions = ["the cat sat on the mat", "a dog barked .", "hello there", "no overlap at all"]
    references = [
        "the cat sat on the red mat",
        "the dog barked loudly .",
        "hello there friend",
        "something else",
    ]
    for prediction, reference in zip(predictions, references, strict=True):
        scores = example_scores(prediction=prediction, reference=reference, language="en")
        assert scores["bleu"] == pytest.approx(sacrebleu.sentence_bleu(prediction, [reference]).score)
        assert scores["chrf"] == pytest.approx(sacrebleu.sentence_chrf(prediction, [reference]).score)
    corpus = corpus_scores(predictions=predictions, references=references, language="en")
    assert corpus["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score)
    assert corpus["chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score)
    chinese = corpus_scores(predictions=["我们明天去北京"], references=["我们明天去上海"], language="zh")
    assert chinese["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(["我们明天去北京"], [["我们明天去上海"]], tokenize="zh").score
    )


# --- Exact match, length, empty answers -------------------------------------------


def test_it_matches_exactly_after_nfkc_and_whitespace_only():
    assert is_exact_match(prediction="  Paris \n", reference="Paris")
    assert is_exact_match(prediction="New  York", reference="New York")
    assert is_exact_match(prediction="ＡＢＣ１２３", reference="ABC123")  # full-width forms
    assert not is_exact_match(prediction="paris", reference="Paris")  # case is kept
    assert not is_exact_match(prediction="Paris.", reference="Paris")  # so is punctuation
    assert not is_exact_match(prediction="", reference="")  # an empty answer never matches


def test_it_counts_english_words_and_chinese_characters():
    assert answer_length("The cat  sat.", language="en") == 3
    assert answer_length("我们明天去北京。", language="zh") == 8
    assert answer_length("我们 明天", language="zh") == 4  # whitespace is not a character here


def test_it_reports_mean_median_and_ratio_of_lengths():
    corpus = corpus_scores(
        predictions=["a b c", "d e", "f"], references=["a b c d", "e f g h", "i j"], language="en"
    )
    assert corpus["length"] == pytest.approx(2.0)  # (3 + 2 + 1) / 3
    assert corpus["length_median"] == 2.0
    assert corpus["reference_length"] == pytest.approx(10 / 3)
    assert corpus["length_ratio"] == pytest.approx(6 / 10)  # total answer words / total reference words


def test_it_reports_the_exact_match_rate_in_percent():
    corpus = corpus_scores(predictions=["Paris", "Rome"], references=["Paris", "Madrid"], language="en")
    assert corpus["exact_match"] == pytest.approx(50.0)
    assert set(corpus) == set(CORPUS_METRICS)


def test_it_scores_an_empty_answer_zero():
    for language in ("en", "zh"):
        scores = example_scores(prediction="", reference="Something to say 有话要说", language=language)
        assert scores == dict.fromkeys(EXAMPLE_METRICS, 0.0)
    assert corpus_scores(predictions=[], references=[], language="en") == dict.fromkeys(CORPUS_METRICS, 0.0)


def test_it_says_which_tokenization_was_used():
    assert "sacrebleu's Chinese tokenizer (zh" in tokenization_note("zh")
    assert "jieba" in tokenization_note("zh")
    assert "13a" in tokenization_note("en") and "jieba" not in tokenization_note("en")
    assert max(len(tokenization_note("zh")), len(tokenization_note("en"))) <= 300  # the column's size


def test_it_sets_up_jieba_quietly_with_its_cache_in_the_temp_folder(tmp_path):
    # A fresh process, so jieba really builds its dictionary; TMPDIR moves tempfile.gettempdir().
    script = "from evals_app.core.segment import chinese_words; print(chinese_words('我们明天去北京'))"
    environment = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    finished = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=True,
    )
    assert finished.stdout.strip() == "['我们', '明天', '去', '北京']"
    assert "Building prefix dict" not in finished.stderr and "Loading model" not in finished.stderr
    assert (tmp_path / "lathe-jieba" / "jieba.cache").is_file()

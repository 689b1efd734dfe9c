import random

import numpy as np

from datasets_app.core.cleaning import clean_file
from datasets_app.core.cleaning.hash_index import HashIndex
from tests.datasets_app.canonical_rows import chat, only, read_canonical, write_canonical

QUESTION = (
    "Explain how a LoRA adapter changes the attention layers of a large language model during fine-tuning."
)
ANSWER = (
    "LoRA freezes the original weight matrices and learns two small low-rank matrices for each targeted "
    "projection, usually the query, key, value and output projections of every attention block. Their "
    "product is added to the frozen weights, so only a few million parameters are trained and stored."
)
ZH_QUESTION = "请解释什么是区块链技术，以及它在金融行业中的主要应用场景有哪些？"
ZH_ANSWER = (
    "区块链是一种分布式账本技术，数据按时间顺序组成区块并通过密码学方法相互链接，"
    "具有去中心化、不可篡改和可追溯的特点。在金融行业中，它常用于跨境支付、供应链金融和数字身份认证。"
)


def _clean(tmp_path, conversations, rules, **options):
    source = write_canonical(tmp_path / "in.jsonl", conversations)
    result = clean_file(source, rules=rules, out_path=tmp_path / "out.jsonl", **options)
    return result, [row["source_line"] for row in read_canonical(tmp_path / "out.jsonl")]


def _distinct_rows(count: int, seed: int = 7) -> list[list[dict]]:
    words = (
        "heart lung kidney dose tablet court appeal clause invoice revenue audit river garden violin planet "
        "harbour lease tenant glucose scan equity bond yield merger forecast margin statute verdict"
    ).split()
    rng = random.Random(seed)
    return [
        chat(
            " ".join(rng.choice(words) for _ in range(10)) + "?",
            " ".join(rng.choice(words) for _ in range(25)),
        )
        for _ in range(count)
    ]


def test_it_removes_exact_duplicates_keeping_the_first(tmp_path):
    conversations = [chat("Hi", "Hello"), chat("Other", "Row"), chat("Hi", "Hello"), chat("Hi", "Hello")]

    result, kept = _clean(tmp_path, conversations, only(exact_dedup=True))

    assert kept == [1, 2]
    outcome = result.outcome("exact_dedup")
    assert outcome.removed == 2
    assert outcome.examples[0]["reason"] == "the same text as line 1"


def test_it_ignores_case_and_spacing_only_when_normalising(tmp_path):
    conversations = [
        chat("What is LoRA?", "Low-rank adaptation."),
        chat("what is  LoRA? ", "LOW-RANK adaptation."),
    ]

    _, kept = _clean(tmp_path, conversations, only(exact_dedup=True, exact_normalize=True))
    assert kept == [1]

    _, kept = _clean(tmp_path, conversations, only(exact_dedup=True, exact_normalize=False))
    assert kept == [1, 2]


def test_it_tells_apart_rows_whose_roles_differ(tmp_path):
    conversations = [
        chat("same", "words"),
        [{"role": "assistant", "content": "same"}, {"role": "user", "content": "words"}],
    ]

    _, kept = _clean(tmp_path, conversations, only(exact_dedup=True))

    assert kept == [1, 2]


def test_it_removes_a_near_duplicate_with_one_word_changed(tmp_path):
    changed = ANSWER.replace("usually", "typically")
    conversations = [
        chat(QUESTION, ANSWER),
        chat("What is the capital of France?", "Paris."),
        chat(QUESTION, changed),
    ]

    result, kept = _clean(tmp_path, conversations, only(near_dedup=True, near_threshold=0.8))

    assert kept == [1, 2]
    reason = result.outcome("near_dedup").examples[0]["reason"]
    assert reason.startswith("nearly the same as line 1 (similarity ≈ 0.")


def test_it_removes_a_chinese_near_duplicate(tmp_path):
    changed = ZH_ANSWER.replace("跨境支付", "跨国汇款")
    conversations = [chat(ZH_QUESTION, ZH_ANSWER), chat(ZH_QUESTION, changed)]

    _, kept = _clean(tmp_path, conversations, only(near_dedup=True, near_threshold=0.8))

    assert kept == [1]


def test_it_keeps_rows_below_the_threshold(tmp_path):
    # Roughly half the wording changed: similar topic, different row.
    rewritten = ANSWER.split(". ")[0] + ". The adapters can later be merged into the base model for serving."
    conversations = [chat(QUESTION, ANSWER), chat(QUESTION, rewritten)]

    _, kept = _clean(tmp_path, conversations, only(near_dedup=True, near_threshold=0.85))

    assert kept == [1, 2]


def test_it_finds_no_near_duplicates_among_distinct_rows(tmp_path):
    result, kept = _clean(tmp_path, _distinct_rows(2000), only(near_dedup=True, near_threshold=0.7))

    assert result.outcome("near_dedup").removed == 0
    assert len(kept) == 2000


def test_it_finds_duplicates_across_chunks(tmp_path):
    conversations = _distinct_rows(50)
    conversations += [
        conversations[3],
        chat(QUESTION, ANSWER),
        chat(QUESTION, ANSWER.replace("few", "handful of")),
    ]

    _, kept = _clean(tmp_path, conversations, only(exact_dedup=True, near_dedup=True), chunk_rows=4)

    assert kept == list(range(1, 51)) + [52]


def test_it_uses_a_very_high_threshold_as_given(tmp_path):
    changed = ANSWER.replace("usually", "typically")
    conversations = [chat(QUESTION, ANSWER), chat(QUESTION, changed), chat(QUESTION, ANSWER)]

    _, kept = _clean(tmp_path, conversations, only(near_dedup=True, near_threshold=0.99))

    assert kept == [1, 2]


def test_the_hash_index_stores_and_finds_many_keys():
    rng = np.random.default_rng(3)
    keys = rng.integers(1, 2**63, size=50_000, dtype=np.uint64) | np.uint64(1)
    keys = np.unique(keys)
    index = HashIndex(capacity=16)

    for start in range(0, len(keys), 7_000):  # several batches, several resizes
        part = keys[start : start + 7_000]
        index.put_new(part, np.arange(start, start + len(part)))

    assert len(index) == len(keys)
    assert (index.get(keys) == np.arange(len(keys))).all()
    absent = rng.integers(1, 2**63, size=1000, dtype=np.uint64) | np.uint64(1)
    absent = absent[~np.isin(absent, keys)]
    assert (index.get(absent) == -1).all()

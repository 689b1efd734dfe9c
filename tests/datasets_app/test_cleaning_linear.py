"""Every cleaning rule runs in linear time and bounded memory, whatever the rows and settings.

Each rule meets 100 KB rows built to make regular expressions backtrack. The time
limits are loose sanity bounds (a quadratic rule takes minutes on these rows).
"""

from __future__ import annotations

import random
import re
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets_app.core.cleaning import CleaningRules
from datasets_app.core.cleaning.minhash import signatures
from datasets_app.core.cleaning.patterns import RepeatedRun
from datasets_app.core.cleaning.pipeline import build_steps
from datasets_app.core.cleaning.result import RuleOutcome, unified_diff
from datasets_app.core.tokens import WhitespaceTokenCounter
from tests.datasets_app.canonical_rows import ALL_OFF, chat

ADVERSARIAL = {
    "one letter": "a" * 100_000,
    "runs just short of 10": ("a" * 9 + "b") * 10_000,
    "runs just short of 10000": ("x" * 9_998 + "y") * 10,
    "at signs": "a@" * 50_000,
    "dotted local part": "a." * 50_000 + "@",
    "endless domain": "x@" + "a-" * 50_000,
    "dotted domain": "contact me at a@" + "a." * 50_000,
    "digits": "1" * 100_000,
    "plus groups": "+1 " * 33_000,
    "bracketed groups": "(555) " * 16_000,
    "dashed digits": "1-" * 50_000,
    "id-like": "11010519491231002" * 5_800,
    "links": "http://" * 14_000,
    "mojibake starts": "Ã" * 100_000,
    "many lines with emails": "write to a@b.co\n" * 6_000,
    "brackets": "{[" * 50_000,
    "spaces then text": " " * 99_999 + "x",
}
RULES = {
    "garbled": {"garbled": True},
    "ads": {"ads": True},
    "ads, long runs": {"ads": True, "repeated_char_run": 10_000},
    "char_length": {"min_chars": 5, "max_chars": 1_000_000},
    "exact_dedup": {"exact_dedup": True},
    "near_dedup": {"near_dedup": True, "num_perm": 1024, "near_threshold": 0.5},
    "token_length": {"length_mode": "split", "max_seq_len": 16},
    "pii_mask": {"pii_mask": True},
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_is_fast_on_adversarial_rows(rule):
    rules = CleaningRules(**{**ALL_OFF, **RULES[rule]})
    steps = build_steps(rules, WhitespaceTokenCounter())
    for name, text in ADVERSARIAL.items():
        rows = [{"messages": chat("q", text), "source_line": line} for line in (1, 2)]
        started = time.monotonic()
        for step in steps.values():
            step.apply(rows, RuleOutcome(rule=step.rule, enabled=True))
        assert time.monotonic() - started < 2, f"{rule} on {name!r}"


def test_the_diff_example_is_bounded_whatever_the_row():
    before = "\n".join(f"line {n} a@b.co" for n in range(50_000))
    after = "\n".join(f"line {n} [EMAIL]" for n in range(50_000))
    started = time.monotonic()
    assert len(unified_diff(before, after)) <= 4000
    assert time.monotonic() - started < 2


def test_minhash_memory_stays_bounded_for_a_long_row_and_many_permutations():
    rng = random.Random(7)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(200_000))
    tracemalloc.start()
    signatures([text], 1024)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Unblocked, datasketch builds n-grams x permutations at once: 200K x 1024 x 8 bytes = 1.6 GB.
    assert peak < 200 * 1024 * 1024


def test_blocked_minhash_gives_the_same_signature():
    from datasketch import MinHash

    from datasets_app.core.cleaning.minhash import MINHASH_SEED, ngram_hashes

    text = "the same words again and again, " * 4_000  # more n-grams than one block
    whole = MinHash(num_perm=64, seed=MINHASH_SEED, hashfunc=int)
    whole.update_batch(ngram_hashes(text))
    assert (signatures([text], 64)[0] == whole.hashvalues).all()


def _old_repeated_run(min_run: int) -> re.Pattern:
    return re.compile(r"([^\s\-=_*#~.`|+/\\])\1{" + str(min_run - 1) + ",}")


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("aab-_ 哈!"), max_size=200),
    min_run=st.integers(min_value=3, max_value=30),
)
def test_the_linear_repeated_run_finds_what_the_plain_pattern_finds(text, min_run):
    old = _old_repeated_run(min_run).search(text)
    new = RepeatedRun(min_run).search(text)
    assert (old and old.span()) == (new and new.span())


def _split_reference(step, messages, message_tokens):
    """The split as first written (quadratic): each exchange re-adds the whole chunk."""
    from datasets_app.core.cleaning.length import _exchanges
    from datasets_app.core.tokens import framing_for

    def fits(indices):
        chosen = list(range(head)) + indices
        tokens = sum(message_tokens[i] for i in chosen)
        return tokens + framing_for(step.counter, [messages[i]["role"] for i in chosen]) <= step.max_seq_len

    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    chunks, current = [], []
    for exchange in _exchanges(messages, head):
        if not any(messages[i]["role"] == "assistant" for i in exchange):
            continue
        if fits(current + exchange):
            current = current + exchange
            continue
        if current:
            chunks.append(current)
        current = exchange if fits(exchange) else []
    if current:
        chunks.append(current)
    return [
        [messages[i]["content"] for i in range(head)] + [messages[i]["content"] for i in c] for c in chunks
    ]


conversations = st.lists(
    st.tuples(st.sampled_from(["system", "user", "assistant"]), st.integers(min_value=0, max_value=12)),
    min_size=1,
    max_size=30,
)


@pytest.mark.parametrize("counter_name", ["whitespace", "demo"])
def test_the_linear_split_cuts_where_the_plain_one_does(counter_name, request):
    from datasets_app.core.cleaning.length import TokenLengthStep

    counter = (
        WhitespaceTokenCounter()
        if counter_name == "whitespace"
        else request.getfixturevalue("demo_token_counter")
    )

    @settings(max_examples=150, deadline=None, database=None)
    @given(turns=conversations, max_seq_len=st.integers(min_value=16, max_value=120))
    def check(turns, max_seq_len):
        messages = [{"role": role, "content": " ".join(["word"] * (size + 1))} for role, size in turns]
        step = TokenLengthStep(counter, max_seq_len, "split")
        tokens = counter.count_many([message["content"] for message in messages])
        total = sum(tokens) + 10**6  # always over the limit: the split runs
        outcome = RuleOutcome(rule="token_length", enabled=True)
        rows = step._split({"messages": messages, "source_line": 1}, tokens, total, outcome)
        assert [[m["content"] for m in row["messages"]] for row in rows] == _split_reference(
            step, messages, tokens
        )

    check()


def test_splitting_a_conversation_of_many_short_turns_is_linear():
    from datasets_app.core.cleaning.length import TokenLengthStep

    messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": "a"} for n in range(200_000)]
    started = time.monotonic()
    rows = TokenLengthStep(WhitespaceTokenCounter(), 65_536, "split").apply(
        [{"messages": messages, "source_line": 1}], RuleOutcome(rule="token_length", enabled=True)
    )
    assert time.monotonic() - started < 5  # the quadratic split took minutes
    assert sum(len(row["messages"]) for row in rows) == 200_000

import json

from datasets_app.core.cleaning import RULE_ORDER, CleaningRules, clean_file
from datasets_app.core.tokens import WhitespaceTokenCounter
from tests.datasets_app.canonical_rows import chat, read_canonical, write_canonical

LONG = "word " * 60


def _sample(tmp_path):
    return write_canonical(
        tmp_path / "in.jsonl",
        [
            chat("What is LoRA?", "Low-rank adaptation."),  # 1 kept
            chat("Broken", "Itâ€™s garbled"),  # 2 garbled
            chat("Broken", "Itâ€™s garbled"),  # 3 garbled first, though also a duplicate
            chat("What is LoRA?", "Low-rank adaptation."),  # 4 exact duplicate of 1
            chat("想学习吗", "加微信领取资料"),  # 5 ads
            chat("Long one", LONG),  # 6 too many tokens
            chat("Mail?", "The example config sets the sender to bob@example.com"),  # 7 masked
        ],
    )


def _rules(**changes) -> CleaningRules:
    return CleaningRules(max_seq_len=50, pii_mask=True, **changes)


def test_it_credits_each_removed_row_to_the_first_rule_that_removes_it(tmp_path):
    result = clean_file(_sample(tmp_path), rules=_rules(), token_counter=WhitespaceTokenCounter())

    removed = {outcome.rule: outcome.removed for outcome in result.outcomes}
    assert removed == {
        "garbled": 2,
        "ads": 1,
        "char_length": 0,
        "exact_dedup": 1,
        "near_dedup": 0,
        "token_length": 1,
        "pii_mask": 0,
    }
    assert result.outcome("pii_mask").changed == 1
    assert (result.rows_in, result.rows_out) == (7, 2)
    assert result.duplicates_found == 1


def test_it_previews_without_writing_and_applies_with_the_same_counts(tmp_path):
    source = _sample(tmp_path)
    out = tmp_path / "out.jsonl"
    counter = WhitespaceTokenCounter()

    preview = clean_file(source, rules=_rules(), token_counter=counter)
    assert not out.exists()
    applied = clean_file(source, rules=_rules(), token_counter=counter, out_path=out)

    assert preview.written is False and applied.written is True
    assert {**preview.to_dict(), "written": True} == applied.to_dict()
    rows = read_canonical(out)
    assert [row["source_line"] for row in rows] == [1, 7]
    assert rows[1]["messages"][1]["content"] == "The example config sets the sender to [EMAIL]"
    assert not (tmp_path / "out.jsonl.part").exists()


def test_it_reports_every_rule_in_pipeline_order_as_json(tmp_path):
    rules = _rules(near_dedup=False, length_mode="off")

    result = json.loads(json.dumps(clean_file(_sample(tmp_path), rules=rules).to_dict()))

    assert [outcome["rule"] for outcome in result["outcomes"]] == list(RULE_ORDER)
    enabled = {outcome["rule"]: outcome["enabled"] for outcome in result["outcomes"]}
    assert enabled["near_dedup"] is False and enabled["token_length"] is False and enabled["garbled"] is True
    assert result["outcomes"][0]["label"] == "Garbled text"
    example = result["outcomes"][0]["examples"][0]
    assert example == {
        "source_line": 2,
        "text": "user: Broken\nassistant: Itâ€™s garbled",
        "reason": example["reason"],
    }
    assert result["removed"] == result["rows_in"] - result["rows_out"]


def test_it_keeps_only_a_few_examples_per_rule_with_short_snippets(tmp_path):
    conversations = [
        chat(f"Question {i} " + "x" * 1000, f"Visit https://spam{i}.example.com now") for i in range(20)
    ]
    source = write_canonical(tmp_path / "in.jsonl", conversations)

    result = clean_file(source, rules=CleaningRules(length_mode="off"), examples_per_rule=3)

    ads = result.outcome("ads")
    assert ads.removed == 20
    assert len(ads.examples) == 3
    # The snippet is centred on what triggered the rule.
    assert all(len(example["text"]) <= 302 and "https://spam" in example["text"] for example in ads.examples)


def test_it_reports_progress_in_bytes_up_to_the_file_size(tmp_path):
    source = _sample(tmp_path)
    calls = []

    clean_file(
        source,
        rules=_rules(length_mode="off"),
        progress=lambda done, total: calls.append((done, total)),
        chunk_rows=2,
    )

    size = source.stat().st_size
    assert len(calls) == 4
    assert calls[-1] == (size, size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_it_handles_an_empty_file(tmp_path):
    source = tmp_path / "empty.jsonl"
    source.write_bytes(b"")

    result = clean_file(source, rules=_rules(length_mode="off"), out_path=tmp_path / "out.jsonl")

    assert (result.rows_in, result.rows_out) == (0, 0)
    assert (tmp_path / "out.jsonl").read_bytes() == b""

import json

from datasets_app.core.stats import TOKEN_HISTOGRAM_EDGES, compute_stats
from tests.datasets_app.canonical_rows import chat, write_canonical


def _rows(count: int) -> list[list[dict]]:
    return [chat(f"Question number {i}?", f"Answer number {i}, in a few words.") for i in range(count)]


def test_it_counts_rows_messages_turns_and_duplicates(tmp_path):
    conversations = [
        chat("Hi", "Hello"),
        chat("Hi", "Hello"),  # exact duplicate
        chat("A", "B", "C", "D", system="S"),  # two turns
        chat("hi ", "HELLO"),  # duplicate once case and spacing are ignored, as cleaning does
    ]
    source = write_canonical(tmp_path / "data.jsonl", conversations)

    stats = compute_stats(source)

    assert stats["rows"] == 4
    assert stats["messages"] == 11
    assert stats["messages_by_role"] == {"assistant": 5, "system": 1, "user": 5}
    assert stats["turns_per_conversation"] == {"1": 3, "2": 1}
    assert stats["duplicates"] == 2
    assert stats["chars"] == {"mean": 8.5, "p50": 9, "p95": 9, "max": 9}
    assert stats["tokens"] is None and stats["token_length_histogram"] is None
    json.dumps(stats)


def test_it_warns_about_very_small_datasets(tmp_path):
    stats = compute_stats(write_canonical(tmp_path / "data.jsonl", _rows(40)))

    assert stats["warnings"][0].startswith("Very small dataset: 40 rows.")
    assert stats["warnings"][1].startswith("The guide recommends at least 5,000 high-quality examples")


def test_it_warns_below_the_recommended_size_only_until_it_is_reached(tmp_path):
    small = compute_stats(write_canonical(tmp_path / "small.jsonl", _rows(150)))
    enough = compute_stats(write_canonical(tmp_path / "enough.jsonl", _rows(5000)))

    assert len(small["warnings"]) == 1
    assert "this dataset has 150" in small["warnings"][0]
    assert enough["warnings"] == []


def test_it_counts_tokens_with_the_models_tokenizer(tmp_path, demo_token_counter):
    conversations = _rows(30) + [chat("Long?", "word " * 3000)]
    source = write_canonical(tmp_path / "data.jsonl", conversations)

    stats = compute_stats(source, token_counter=demo_token_counter)

    expected = [demo_token_counter.conversation_tokens(messages) for messages in conversations]
    tokens = stats["tokens"]
    assert tokens["total"] == sum(expected)
    assert tokens["max"] == max(expected)
    assert tokens["tokenizer"] == "demo-model"
    assert (tokens["limit"], tokens["over_limit"]) == (2048, 1)
    histogram = stats["token_length_histogram"]
    assert histogram["edges"] == list(TOKEN_HISTOGRAM_EDGES)
    assert len(histogram["counts"]) == len(histogram["edges"]) - 1
    assert histogram["counts"][0] + histogram["counts"][1] == 30  # the short rows: under 128 tokens
    assert histogram["counts"][6] == 1  # 2048..4096
    assert sum(histogram["counts"]) + histogram["over_max"] == 31
    assert any("longer than 2,048 tokens" in warning for warning in stats["warnings"])
    json.dumps(stats)


def test_it_reports_progress_and_handles_an_empty_file(tmp_path):
    source = tmp_path / "empty.jsonl"
    source.write_bytes(b"")
    calls = []

    stats = compute_stats(source, progress=lambda done, total: calls.append((done, total)))

    assert stats["rows"] == 0
    assert stats["chars"] == {"mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    assert calls[-1] == (0, 0)


def test_it_counts_the_final_answers_lengths_and_how_many_differ(tmp_path, demo_token_counter):
    """What the automatic GRPO settings read: how long the answers to learn are, and whether they are a few
    labels (a classification set) or free answers."""
    labels = [chat(f"Ticket {i}: is it urgent?", "Urgent" if i % 3 else " urgent ") for i in range(12)]
    labels += [chat(f"Ticket {i}: is it urgent?", "Routine") for i in range(12, 20)]
    two_turns = [chat("A", "B", "Ticket 20: is it urgent?", "Routine")]
    source = write_canonical(tmp_path / "labels.jsonl", labels + two_turns)

    answers = compute_stats(source, token_counter=demo_token_counter)["answers"]

    assert answers["rows"] == 21
    assert answers["distinct"] == 2  # "Urgent" and " urgent " are one label; the last turn's answer counts
    expected = demo_token_counter.count_many(["Urgent", " urgent ", "Routine"])
    assert answers["tokens"]["max"] == max(expected)

    free = compute_stats(write_canonical(tmp_path / "free.jsonl", _rows(30)))["answers"]
    assert free["distinct"] == 30 and free["tokens"] is None  # no tokenizer: lengths are not counted
    assert not free["distinct_capped"]


def test_the_version_page_shows_the_answers_how_many_differ_and_how_long(alice_client, alice):
    from django.urls import reverse

    from tests.datasets_app.factories import dataset_with_version

    _, _, version = dataset_with_version(alice)
    lengths = {"p50": 9, "p95": 14, "max": 30}
    answers = {"rows": 20, "distinct": 1000, "distinct_capped": True, "tokens": lengths}
    version.stats = {"rows": 20, "duplicates": 0, "answers": answers}
    version.save()
    page = alice_client.get(reverse("dataset_version_detail", args=[version.pk])).content.decode()
    assert "1000 or more different · median 9 tokens · 95% under 14 · longest 30" in page

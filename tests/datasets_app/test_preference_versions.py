"""A preference dataset's figures (pairs, how often the preferred answer is the longer one: a known bias
of preference tuning), and supervised training refusing it in words rather than learning half of it."""

from __future__ import annotations

import json

import pytest

from datasets_app.core.stats import compute_stats
from tests.datasets_app.factories import dataset_with_version
from training_app.ml.recipe import Recipe
from training_app.services import TrainingRefused, training_start


def _pair(index: int, chosen: str, rejected: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Question {index}?"},
            {"role": "assistant", "content": chosen},
        ],
        "rejected": [{"role": "assistant", "content": rejected}],
        "source_line": index,
    }


def _write(path, rows: list[dict]):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _preference_version(owner, format_name: str):
    """A prepared version from a file of that preference format, without running jobs."""
    _, dataset_file, version = dataset_with_version(
        owner, conversations=[_pair(i, "Good.", "Bad.") for i in range(4)]
    )
    dataset_file.format = format_name
    dataset_file.save()
    return dataset_file, version


def test_pairs_are_counted_and_a_length_bias_is_pointed_out(tmp_path):
    rows = [_pair(i, "A long and careful answer.", "Short.") for i in range(8)]
    rows += [
        _pair(8, "Yes.", "No, and here is a long wrong story."),
        _pair(9, "Fine.", "Fine answer, longer."),
    ]
    stats = compute_stats(_write(tmp_path / "pairs.jsonl", rows))
    assert stats["preference"]["pairs"] == 10 and stats["preference"]["chosen_longer_share"] == 0.8
    assert stats["preference"]["chosen_chars"]["max"] == len("A long and careful answer.")
    assert any("longer one in 80% of pairs" in warning for warning in stats["warnings"])


def test_rated_answers_need_both_labels(tmp_path):
    rows = [
        {
            "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": f"A{i}"}],
            "label": True,
        }
        for i in range(3)
    ]
    path = tmp_path / "rated.jsonl"
    path.write_text("".join(json.dumps({**row, "source_line": i}) + "\n" for i, row in enumerate(rows, 1)))
    stats = compute_stats(path)
    assert stats["preference"] == {"rated": 3, "rated_good_share": 1.0}
    assert any("need both good and bad ones" in warning for warning in stats["warnings"])
    conversations = tmp_path / "plain.jsonl"
    conversations.write_text(json.dumps({"messages": rows[0]["messages"], "source_line": 1}) + "\n")
    assert compute_stats(conversations)["preference"] is None


@pytest.mark.django_db
def test_supervised_training_refuses_a_preference_version_and_says_why(alice):
    from models_app.models import BaseModel

    _, version = _preference_version(alice, "preference")
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="0.5B")
    with pytest.raises(TrainingRefused, match="holds preference pairs.*choose the objective 'dpo'"):
        training_start(owner=alice, dataset_version=version, base_model=model, recipe=Recipe())


def test_cleaning_keeps_the_other_answer_and_never_cuts_a_rated_answer(tmp_path, demo_token_counter):
    from datasets_app.core.cleaning import clean_file
    from tests.datasets_app.canonical_rows import only, read_canonical

    long_answer = "LoRA trains small matrices beside the frozen weights. " * 60
    rows = [_pair(1, "Paris.", "Lyon."), _pair(2, long_answer, "No idea.")]
    source = _write(tmp_path / "in.jsonl", rows)
    rules = only(length_mode="truncate", max_seq_len=128)
    clean_file(source, rules=rules, out_path=tmp_path / "out.jsonl", token_counter=demo_token_counter)
    kept = read_canonical(tmp_path / "out.jsonl")
    assert [row["source_line"] for row in kept] == [1]  # dropped, not truncated: it is what was rated
    assert kept[0]["rejected"] == [{"role": "assistant", "content": "Lyon."}]


@pytest.mark.django_db
def test_an_openai_supervised_job_refuses_a_preference_file_as_an_invalid_training_file(alice):
    from jobs.models import Job
    from jobs.registry import JobFailure
    from jobs.reporter import JobReporter
    from training_app.openai_runner import _checked_file

    dataset_file, _ = _preference_version(alice, "openai_preference")
    job = Job.objects.create(
        owner=alice, kind="train", queue="gpu", params={"training_file_id": dataset_file.pk}
    )
    with pytest.raises(JobFailure) as failure:
        _checked_file(job, JobReporter(job.pk), "training_file")
    assert failure.value.code == "invalid_training_file"
    assert "holds preference pairs" in failure.value.message and 'method "dpo"' in failure.value.hint


@pytest.mark.django_db
def test_the_version_page_shows_the_pairs_and_the_length_bias(alice, alice_client, tmp_path):
    from django.urls import reverse

    rows = [_pair(i, "A long and careful answer.", "Short.") for i in range(4)]
    _, _, version = dataset_with_version(alice, conversations=rows)
    version.stats = compute_stats(_write(tmp_path / "pairs.jsonl", rows))
    version.save()
    page = alice_client.get(reverse("dataset_version_detail", args=[version.pk])).content.decode()
    assert "Preference pairs" in page and "the preferred one is the longer in 100% of pairs" in page
    assert "learn that longer is better" in page


def test_duplicates_and_adverts_are_judged_on_both_answers_of_a_pair(tmp_path):
    from datasets_app.core.cleaning import clean_file
    from tests.datasets_app.canonical_rows import only, read_canonical

    rows = [
        _pair(1, "Paris.", "Lyon."),
        _pair(1, "Paris.", "Marseille."),  # the same prompt and preferred answer: another pair
        _pair(1, "Paris.", "Lyon."),  # the first pair again
        _pair(4, "Rome.", "Buy cheap flights at www.cheap-flights.example now!"),  # an advert, rejected side
    ]
    for line, row in enumerate(rows, 1):
        row["source_line"] = line
    source = _write(tmp_path / "in.jsonl", rows)
    result = clean_file(source, rules=only(exact_dedup=True, ads=True), out_path=tmp_path / "out.jsonl")
    assert [row["source_line"] for row in read_canonical(tmp_path / "out.jsonl")] == [1, 2]
    assert result.outcome("exact_dedup").removed == 1 and result.outcome("ads").removed == 1

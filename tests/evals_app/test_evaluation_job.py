"""An evaluation job end to end: a real worker asks the session's real vLLM server, base and fine-tuned."""

from __future__ import annotations

import csv
import io

import orjson
import pytest

from evals_app.core.general_skills import grade, load_exam
from evals_app.models import Evaluation
from evals_app.services import evaluation_start
from jobs.models import Job
from jobs.states import FINISHED_STATES, JobState
from models_app.ml.vllm_server import VllmClient
from tests.datasets_app.factories import dataset_with_version
from tests.helpers import wait_until
from tests.serving_fixtures import distinctive_conversation

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.ml_heavy]

EVAL_ROWS = 8


def _finished(job_id: int, timeout: float = 300) -> Job:
    return wait_until(
        lambda: (job := Job.objects.get(pk=job_id)).state in FINISHED_STATES and job,
        timeout=timeout,
        message=f"evaluation job {job_id} to finish",
    )


@pytest.fixture
def evaluated(alice, attach_server, make_adapter):
    """Alice's adapter evaluated against its base on prompts it was not trained on (numbers 30 and up)."""
    server = attach_server(alice)
    adapter = make_adapter(alice)
    conversations = [{**distinctive_conversation(30 + i), "source_line": i + 1} for i in range(EVAL_ROWS)]
    _, _, version = dataset_with_version(alice, conversations=conversations)
    evaluation = evaluation_start(
        owner=alice,
        dataset_version=version,
        adapter=adapter,
        settings={"max_tokens": 24, "max_rows": EVAL_ROWS, "general_skills": True},
        judge={
            "base_url": server.base_url,
            "model": server.model.hf_id,
            "rubric": "The answer states the sum correctly.",
        },
        judge_api_key=server.secret,
    )
    job = _finished(evaluation.job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    return server, Evaluation.objects.get(pk=evaluation.pk)


def test_it_scores_the_fine_tuned_model_against_its_base_and_shows_sorts_and_exports_the_examples(
    evaluated, alice_client, bob_client
):
    server, evaluation = evaluated
    examples = list(evaluation.examples.order_by("position"))
    assert len(examples) == EVAL_ROWS
    assert examples[0].reference == "Lathe lathe lathe! The answer is 60."
    assert examples[0].prompt_text == "What is 30 plus 30?"
    # The adapter learnt to say "Lathe"; the base model never does.
    assert sum("Lathe" in example.answers["tuned"] for example in examples) >= EVAL_ROWS // 2
    assert not any("Lathe" in example.answers["base"] for example in examples)
    tuned, base = evaluation.scores["tuned"], evaluation.scores["base"]
    assert tuned["rougeL"]["value"] > base["rougeL"]["value"] + 20
    for metric in ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "similarity"):
        assert tuned[metric]["low"] <= tuned[metric]["value"] <= tuned[metric]["high"], metric
    assert evaluation.differences["rougeL"]["tuned"]["low"] > 0  # better beyond chance
    assert evaluation.language == "en" and "13a" in evaluation.tokenization
    assert "greedy" in evaluation.generation_note
    # Per-example change, for sorting: tuned ROUGE-L minus base ROUGE-L.
    first = examples[0]
    assert first.delta == pytest.approx(first.scores["tuned"]["rougeL"] - first.scores["base"]["rougeL"])
    # The judge answered (a 135M model rarely gives a usable score, so only its presence is checked)
    # and its key is not kept.
    assert set(first.judge) == {"tuned", "base"}
    assert evaluation.judge_api_key == ""
    # The adapter was loaded under a private name for the evaluation and unloaded afterwards.
    client = VllmClient(server.base_url, server.secret)
    try:
        assert not any(name.startswith(f"eval-{evaluation.pk}-") for name in client.model_names())
    finally:
        client.close()
    _general_skills_checked(evaluation)
    # One evaluation (a minute on 2 cores) serves both checks: the scores above, its pages below.
    _pages_sort_and_export(evaluation, alice_client, bob_client)


def _general_skills_checked(evaluation) -> None:
    """Both models answered the 48 everyday questions, each graded as stored (a 135M model gets few
    right, so only the bookkeeping is checked here; the grading itself in test_general_skills.py)."""
    skills = evaluation.general_skills
    exam = {item.id: item for item in load_exam()}
    assert skills["questions"] == len(exam) == len(skills["items"])
    for asked in skills["items"]:
        assert set(asked["answers"]) == {"tuned", "base"} and all(asked["answers"].values())
        for label, text in asked["answers"].items():
            assert asked["right"][label] == grade(exam[asked["id"]], text), (asked["id"], label, text)
    for label in ("tuned", "base"):
        assert skills["right"][label] == sum(asked["right"][label] for asked in skills["items"])
    assert skills["comparison"]["verdict"] in {"worse", "same", "better"}


def _pages_sort_and_export(evaluation, alice_client, bob_client) -> None:
    page = alice_client.get(f"/evaluations/{evaluation.pk}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-metric="rougeL"' in body and "Walk through the examples" in body
    assert 'id="below-base"' not in body  # it did better than its base
    assert 'id="general-skills"' in body
    assert 'id="win-rate"' in body and evaluation.win_rate["rougeL"]["compared"] == EVAL_ROWS

    worse_first = alice_client.get(f"/evaluations/{evaluation.pk}/examples?sort=worse").context["page"]
    deltas = [example.delta for example in worse_first]
    assert deltas == sorted(deltas)
    better_first = alice_client.get(f"/evaluations/{evaluation.pk}/examples?sort=better").context["page"]
    assert [example.delta for example in better_first] == sorted(deltas, reverse=True)

    exported = alice_client.get(f"/evaluations/{evaluation.pk}/export.jsonl")
    lines = [orjson.loads(line) for line in b"".join(exported.streaming_content).splitlines()]
    assert len(lines) == EVAL_ROWS and lines[0]["reference"] == "Lathe lathe lathe! The answer is 60."
    assert set(lines[0]["answers"]) == {"tuned", "base"}
    table = alice_client.get(f"/evaluations/{evaluation.pk}/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(table.streaming_content).decode())))
    assert len(rows) == EVAL_ROWS and rows[0]["prompt"] == "What is 30 plus 30?"
    assert float(rows[0]["tuned_rougeL"]) == pytest.approx(lines[0]["scores"]["tuned"]["rougeL"])

    for url in ("/", "/examples", "/export.csv", "/export.jsonl"):
        assert bob_client.get(f"/evaluations/{evaluation.pk}{url}").status_code == 404


def test_it_starts_a_vllm_of_its_own_when_the_model_is_not_deployed_and_stops_it(
    alice, make_adapter, celery_worker
):
    """No Deploy first, the usual way right after training: the job runs vLLM for itself on the worker, loads
    the adapter into it, asks it and its base, and leaves nothing running."""
    from evals_app.serving import evaluation_log_path
    from models_app.models import ModelServer

    conversations = [{**distinctive_conversation(50 + i), "source_line": i + 1} for i in range(3)]
    _, _, version = dataset_with_version(alice, conversations=conversations)
    evaluation = evaluation_start(
        owner=alice, dataset_version=version, adapter=make_adapter(alice), settings={"max_tokens": 8}
    )
    job = _finished(evaluation.job_id, timeout=600)
    assert job.state == JobState.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    examples = list(evaluation.examples.all())
    assert len(examples) == 3 and set(evaluation.scores) == {"tuned", "base"}
    assert all(example.answers["tuned"] and example.answers["base"] for example in examples)
    # The adapter was loaded: only it says "Lathe".
    assert any("Lathe" in example.answers["tuned"] for example in examples)
    assert not any("Lathe" in example.answers["base"] for example in examples)
    messages = [event.payload.get("message", "") for event in job.events.filter(kind="log")]
    assert any(message.startswith("Starting vLLM for") for message in messages)
    assert any(message.startswith("Stopped the evaluation's vLLM server") for message in messages)
    assert not ModelServer.objects.exists()  # nothing was deployed
    assert evaluation_log_path(evaluation.pk).stat().st_size > 0  # vLLM's own log, kept for the user


def test_it_fails_with_a_plain_message_when_the_judge_does_not_answer(alice, attach_server, make_adapter):
    from models_app.ml.vllm_server import free_port

    attach_server(alice)
    conversations = [{**distinctive_conversation(70 + i), "source_line": i + 1} for i in range(2)]
    _, _, version = dataset_with_version(alice, conversations=conversations)
    judge_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    evaluation = evaluation_start(
        owner=alice,
        dataset_version=version,
        adapter=make_adapter(alice),
        settings={"max_tokens": 4},
        judge={"base_url": judge_url, "model": "judge", "rubric": "Correct sum."},
        judge_api_key="judge-secret",
    )

    job = _finished(evaluation.job_id)

    assert job.state == JobState.FAILED
    assert job.error["code"] == "judge_not_answering"
    assert job.error["message"] == f"The judge at {judge_url} did not answer."
    assert "without a judge" in job.error["hint"]
    evaluation.refresh_from_db()
    assert evaluation.judge_api_key == ""  # the judge's key is not kept after the job


def test_it_compares_with_another_adapter_on_the_same_server(alice, attach_server, make_adapter):
    """ "SFT then DPO" is judged against the SFT adapter, not the base: the other side is an adapter too.
    Here both sides are the same trained weights, so they give the same greedy answers: every example is a
    tie, and the other side says "Lathe" as only the adapter does (the base never does)."""
    attach_server(alice)
    tuned, baseline = make_adapter(alice, suffix="dpo"), make_adapter(alice, suffix="sft")
    conversations = [{**distinctive_conversation(80 + i), "source_line": i + 1} for i in range(4)]
    _, _, version = dataset_with_version(alice, conversations=conversations)
    evaluation = evaluation_start(
        owner=alice,
        dataset_version=version,
        adapter=tuned,
        baseline_adapter=baseline,
        settings={"max_tokens": 16},
    )
    job = _finished(evaluation.job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    examples = list(evaluation.examples.all())
    assert all(example.answers["base"] == example.answers["tuned"] for example in examples)
    assert sum("Lathe" in example.answers["base"] for example in examples) >= 2
    summary = evaluation.win_rate["rougeL"]
    assert (summary["ties"], summary["rate"], summary["low"], summary["high"]) == (4, 50.0, 50.0, 50.0)

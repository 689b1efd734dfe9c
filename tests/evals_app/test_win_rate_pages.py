"""Comparing with another adapter, and the win rate as users read it: the form, the refusals, the runner's
sides, the pages and the exports. No worker: answers are recorded as an evaluation job records them."""

from __future__ import annotations

import csv
import io

import orjson
import pytest

from evals_app.core.report import evaluate_answers
from evals_app.core.rows import load_eval_rows
from evals_app.models import LABEL_BASE, LABEL_TUNED, Evaluation
from evals_app.runner import _contenders
from evals_app.selectors import deploy_warning
from evals_app.services import EvaluationRefused, evaluation_record, evaluation_record_judge, evaluation_start
from jobs.models import Job
from jobs.registry import JobFailure
from jobs.states import JobState
from models_app.models import Adapter, BaseModel
from tests.datasets_app.factories import dataset_with_version
from tests.evals_app.factories import evaluation_form, sft_and_dpo_adapters

pytestmark = pytest.mark.django_db

ROWS = 6


@pytest.fixture
def base_model():
    return BaseModel.objects.create(hf_id="tests/base", display_name="Test base", local_dir="/nonexistent")


def _adapter(owner, base_model, name: str, job: Job | None = None) -> Adapter:
    return Adapter.objects.create(owner=owner, base_model=base_model, name=name, path="/x", rank=8, job=job)


@pytest.fixture
def sft_and_dpo(alice, base_model):
    """Alice's supervised adapter, and the DPO adapter trained from it ("SFT then DPO")."""
    return sft_and_dpo_adapters(alice, base_model)


def test_the_form_offers_the_users_adapters_of_the_same_base_and_picks_the_one_dpo_started_from(
    alice, bob, alice_client, base_model, sft_and_dpo
):
    sft, dpo = sft_and_dpo
    _adapter(bob, base_model, "bobs-adapter")
    alone = _adapter(alice, BaseModel.objects.create(hf_id="tests/other", display_name="Other"), "other-base")
    form = alice_client.get(f"/evaluations/new?adapter={dpo.pk}").context["form"]
    assert form.fields["baseline"].choices == [("", "The base model"), (sft.pk, "Adapter support-sft")]
    assert form.fields["baseline"].initial == sft.pk
    # An adapter with no other of its base to compare with gets no such field.
    assert "baseline" not in alice_client.get(f"/evaluations/new?adapter={alone.pk}").context["form"].fields
    # The supervised adapter may be compared with the DPO one too; nothing is preselected for it.
    form = alice_client.get(f"/evaluations/new?adapter={sft.pk}").context["form"]
    assert form.fields["baseline"].choices[1] == (dpo.pk, "Adapter support-dpo")
    assert form.fields["baseline"].initial is None


def test_it_starts_an_evaluation_against_the_chosen_adapter_and_refuses_one_not_offered(
    alice, bob, alice_client, base_model, sft_and_dpo
):
    sft, dpo = sft_and_dpo
    bobs = _adapter(bob, base_model, "bobs-adapter")
    _, _, version = dataset_with_version(alice, rows=8)
    fields = evaluation_form(dpo, version)
    refused = alice_client.post("/evaluations/new", {**fields, "baseline": bobs.pk})
    assert refused.status_code == 200 and "baseline" in refused.context["form"].errors
    response = alice_client.post("/evaluations/new", {**fields, "baseline": sft.pk})
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302
    # Compared with the adapter even with "compare with base" unticked: that is what was asked.
    assert evaluation.baseline_adapter == sft and evaluation.compare_with_base
    assert evaluation.base_label == "support-sft"
    assert [(c.label, c.model, c.adapter) for c in _contenders(evaluation)] == [
        (LABEL_TUNED, base_model, dpo),
        (LABEL_BASE, base_model, sft),
    ]
    page = alice_client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert "support-sft (another of your adapters, same prompts)" in page


def test_the_service_refuses_an_adapter_of_another_user_or_base_or_the_adapter_itself(
    alice, bob, base_model, sft_and_dpo
):
    sft, dpo = sft_and_dpo
    _, _, version = dataset_with_version(alice, rows=4)
    other_base = _adapter(alice, BaseModel.objects.create(hf_id="tests/other", display_name="Other"), "o")
    cases = [
        (_adapter(bob, base_model, "bobs"), "your own adapters"),
        (other_base, "another base model"),
        (dpo, "compared with itself"),
    ]
    for baseline, words in cases:
        with pytest.raises(EvaluationRefused, match=words):
            evaluation_start(owner=alice, dataset_version=version, adapter=dpo, baseline_adapter=baseline)
    assert not Evaluation.objects.exists()


def test_a_baseline_deleted_before_the_job_runs_fails_it_saying_so(alice, sft_and_dpo):
    sft, dpo = sft_and_dpo
    _, _, version = dataset_with_version(alice, rows=4)
    evaluation = evaluation_start(owner=alice, dataset_version=version, adapter=dpo, baseline_adapter=sft)
    sft.delete()
    evaluation.refresh_from_db()
    with pytest.raises(JobFailure) as failure:
        _contenders(evaluation)
    assert failure.value.code == "baseline_deleted" and "support-sft" in failure.value.message
    # What it was compared with is still named.
    assert evaluation.base_label == "support-sft"


def _record(evaluation: Evaluation, tuned: list[str], base: list[str], *, judge_pending=False) -> None:
    references = [f"The answer is {2 * n}." for n in range(ROWS)]
    answers = {LABEL_TUNED: tuned, LABEL_BASE: base}
    report = evaluate_answers(references=references, answers=answers, resamples=200).to_dict()
    examples = [
        {
            "messages": [{"role": "user", "content": f"What is {n} plus {n}?"}],
            "reference": references[n],
            "answers": {LABEL_TUNED: tuned[n], LABEL_BASE: base[n]},
        }
        for n in range(ROWS)
    ]
    evaluation_record(
        evaluation=evaluation,
        examples=examples,
        report=report,
        generation_note="greedy",
        judge_pending=judge_pending,
    )
    Job.objects.filter(pk=evaluation.job_id).update(state=JobState.SUCCEEDED)


def test_without_a_judge_rouge_decides_each_example_and_the_page_says_how_to_read_it(
    alice, alice_client, base_model
):
    adapter = _adapter(alice, base_model, "tuned")
    _, _, version = dataset_with_version(alice, rows=ROWS)
    evaluation = evaluation_start(owner=alice, dataset_version=version, adapter=adapter)
    right = [f"The answer is {2 * n}." for n in range(ROWS)]
    # Four right where the base is wrong, one the same, one wrong where the base is right.
    tuned = right[:5] + ["No idea at all."]
    base = ["No idea at all."] * 4 + [right[4], right[5]]
    _record(evaluation, tuned, base)
    evaluation.refresh_from_db()

    summary = evaluation.win_rate["rougeL"]
    assert (summary["wins"], summary["ties"], summary["losses"]) == (4, 1, 1)
    assert summary["rate"] == pytest.approx(100 * 4.5 / 6)
    outcomes = [example.comparison["outcome"] for example in evaluation.examples.order_by("position")]
    assert outcomes == ["win"] * 4 + ["tie", "loss"]

    page = alice_client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="win-rate"' in page and "Win rate against Test base" in page
    assert 'data-by="rougeL"' in page and "give an LLM judge" in page
    assert 'better on <strong data-count="wins">4</strong>' in page
    # Six prompts are too few to be sure: the interval includes 50%, and the page says so.
    assert summary["low"] <= 50 and "Not clearly better or worse" in page
    examples = alice_client.get(f"/evaluations/{evaluation.pk}/examples?sort=order").content.decode()
    assert examples.count('data-outcome="win"') == 4 and examples.count('data-outcome="loss"') == 1

    table = alice_client.get(f"/evaluations/{evaluation.pk}/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(table.streaming_content).decode())))
    assert [(row["tuned_outcome"], row["outcome_decided_by"]) for row in rows][-2:] == [
        ("tie", "rougeL"),
        ("loss", "rougeL"),
    ]


def test_the_judges_win_rate_comes_first_and_a_clear_result_is_called_better(
    alice, alice_client, base_model, sft_and_dpo
):
    sft, dpo = sft_and_dpo
    _, _, version = dataset_with_version(alice, rows=ROWS)
    evaluation = evaluation_start(
        owner=alice,
        dataset_version=version,
        adapter=dpo,
        baseline_adapter=sft,
        judge={"base_url": "http://127.0.0.1:9/v1", "model": "judge", "rubric": "Right sum."},
        judge_api_key="k",
    )
    same = [f"The answer is {2 * n}." for n in range(ROWS)]
    _record(evaluation, same, same, judge_pending=True)
    pairs = [{"score": 1.0, "consistent": True, "reason": "A is right."}] * (ROWS - 1)
    pairs.append({"score": 0.5, "consistent": False, "reason": "A reads better."})
    verdict = {"score": 8.0, "reason": "Fine."}
    evaluation_record_judge(
        evaluation=evaluation,
        verdicts={LABEL_TUNED: [verdict] * ROWS, LABEL_BASE: [verdict] * ROWS},
        scores={},
        pairs=pairs,
    )
    evaluation.refresh_from_db()
    assert evaluation.win_rate["judge"]["rate"] == pytest.approx(100 * 5.5 / 6)
    assert evaluation.win_rate["rougeL"]["ties"] == ROWS  # the same words: the metric sees no difference

    page = alice_client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert "Win rate against support-sft" in page
    assert page.index('data-by="judge"') < page.index('data-by="rougeL"')
    assert "It gave the same verdict both ways on 5 of 6 pairs" in page
    assert 'data-verdict="better"' in page and "better more often than not, beyond chance" in page
    examples = alice_client.get(f"/evaluations/{evaluation.pk}/examples?sort=order").content.decode()
    assert "changed its mind with the order" in examples
    exported = alice_client.get(f"/evaluations/{evaluation.pk}/export.jsonl")
    last = orjson.loads(b"".join(exported.streaming_content).splitlines()[-1])
    assert last["comparison"] == {
        "by": "judge",
        "score": 0.5,
        "consistent": False,
        "reason": "A reads better.",
        "outcome": "tie",
    }


def test_an_evaluation_against_another_adapter_does_not_count_as_one_against_the_base(
    alice, base_model, sft_and_dpo
):
    """The deploy warning says "below its base model": an evaluation against the SFT adapter is not that."""
    sft, dpo = sft_and_dpo
    _, _, version = dataset_with_version(alice, rows=ROWS)
    evaluation = evaluation_start(owner=alice, dataset_version=version, adapter=dpo, baseline_adapter=sft)
    wrong, right = ["No."] * ROWS, [f"The answer is {2 * n}." for n in range(ROWS)]
    _record(evaluation, wrong, right)  # far below its SFT start
    evaluation.refresh_from_db()
    assert evaluation.differences["rougeL"][LABEL_TUNED]["high"] < 0
    assert deploy_warning(adapter=dpo) is None


def test_a_preference_versions_prompts_are_asked_with_the_preferred_answer_as_reference(tmp_path):
    rows = [
        {
            "messages": [{"role": "user", "content": "Dose?"}, {"role": "assistant", "content": "5 mg."}],
            "rejected": [{"role": "assistant", "content": "50 mg."}],
            "source_line": 1,
        },
        {  # a rated answer marked bad (KTO): not an answer to expect
            "messages": [{"role": "user", "content": "Dose?"}, {"role": "assistant", "content": "A lot."}],
            "label": False,
            "source_line": 2,
        },
        {
            "messages": [{"role": "user", "content": "Max?"}, {"role": "assistant", "content": "20 mg."}],
            "label": True,
            "source_line": 3,
        },
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    loaded = load_eval_rows(path)
    assert [(row["reference"], row["source_line"]) for row in loaded] == [("5 mg.", 1), ("20 mg.", 3)]
    assert loaded[0]["messages"] == [{"role": "user", "content": "Dose?"}]

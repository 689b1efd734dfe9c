"""The worker side of an evaluation: ask each model the prompts through vLLM, score the answers, store them;
then, with an LLM judge, hand the job to the data queue, where the judge grades the stored answers.

Generation and scoring (evals_app/core) know nothing of Django; this module loads the rows, finds
or starts a vLLM server for each model (evals_app/serving.py), reports progress and records results.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from evals_app.background import in_background, in_background_or_fail
from evals_app.core.general_skills import EXAM_MAX_TOKENS, exam_report, load_exam
from evals_app.core.rows import load_eval_rows
from evals_app.judge_phase import judge_evaluation
from evals_app.models import LABEL_BASE, LABEL_TUNED, EvalSplit, Evaluation, candidate_base_model
from evals_app.services import evaluation_forget_secret, evaluation_record
from evals_app.serving import Contender, served_contenders
from jobs.models import Job
from jobs.params import job_params
from jobs.queues import QUEUE_DATA
from jobs.registry import JobFailure, JobHandover
from jobs.reporter import JobReporter
from lathe_common.web.storage import artifact_store

if TYPE_CHECKING:
    from evals_app.core.generate import GenerationSettings


def _contenders(evaluation: Evaluation) -> list[Contender]:
    adapter = evaluation.adapter
    base_model = candidate_base_model(adapter, evaluation.model)
    contenders = [Contender(LABEL_TUNED, adapter.base_model if adapter else evaluation.model, adapter)]
    if evaluation.settings.get("baseline_name"):
        if evaluation.baseline_adapter is None:
            raise JobFailure(
                "baseline_deleted",
                f"The adapter to compare with, {evaluation.settings['baseline_name']}, was deleted.",
                "Start the evaluation again, comparing with the base model or another adapter.",
            )
        contenders.append(Contender(LABEL_BASE, base_model, evaluation.baseline_adapter))
    elif evaluation.compare_with_base and base_model is not None:
        contenders.append(Contender(LABEL_BASE, base_model, None))
    return contenders


def _load_rows(evaluation: Evaluation) -> list[dict]:
    version = evaluation.dataset_version
    key = version.validation_key if evaluation.split == EvalSplit.VALIDATION else version.data_key
    if not key:
        raise JobFailure(
            "no_rows", "This dataset version has no rows to evaluate on.", "Pick another version."
        )
    rows = load_eval_rows(artifact_store().local_path(key), max_rows=evaluation.settings.get("max_rows"))
    if not rows:
        raise JobFailure(
            "no_prompts",
            "None of the rows ends with an assistant answer, so there is nothing to compare against.",
            "Evaluate on data whose conversations end with the answer you expect.",
        )
    return rows


def _generation_settings(evaluation: Evaluation) -> GenerationSettings:
    from evals_app.core.generate import GenerationSettings

    return GenerationSettings(
        max_tokens=int(evaluation.settings["max_tokens"]),
        temperature=float(evaluation.settings["temperature"]),
        top_p=float(evaluation.settings["top_p"]),
        seed=evaluation.settings.get("seed"),
        concurrency=int(evaluation.settings["concurrency"]),
    )


def _ask(target, conversations: list, settings: GenerationSettings, reporter: JobReporter, what: str) -> list:
    """One model's answers to `conversations`, with progress; a server that stops answering fails the job."""
    from evals_app.core.generate import generate_answers

    reporter.stage(f"Answering {len(conversations)} {what} with {target.contender.display_name}")

    def work(on_progress, should_stop):
        return generate_answers(
            base_url=target.base_url,
            api_key=target.api_key,
            model=target.model_name,
            conversations=conversations,
            settings=settings,
            progress=on_progress,
            should_stop=should_stop,
        )

    failure = JobFailure(
        "server_not_answering",
        f"The model server stopped answering {target.contender.display_name}'s prompts.",
        "Try again; if it keeps happening, open the endpoint's log on the Endpoints page.",
    )
    return in_background_or_fail(reporter, len(conversations), work, failure)


@dataclass
class _Answers:
    texts: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, list[str | None]] = field(default_factory=dict)
    exam: dict[str, list[str | None]] = field(default_factory=dict)  # the general skills check's


def _generate(
    evaluation: Evaluation, rows: list[dict], reporter: JobReporter, exam: list
) -> tuple[_Answers, str]:
    settings = _generation_settings(evaluation)
    # The exam asks for short answers, greedily: its questions have one right answer each.
    exam_settings = replace(settings, max_tokens=EXAM_MAX_TOKENS, temperature=0.0, top_p=1.0)
    conversations = [row["messages"] for row in rows]
    answers = _Answers()
    # closing(): a failure in the loop still stops the evaluation's own server and unloads adapters.
    with closing(served_contenders(evaluation, _contenders(evaluation), reporter)) as targets:
        for target in targets:
            generations = _ask(target, conversations, settings, reporter, "prompts")
            label = target.contender.label
            answers.texts[label] = [generation.text for generation in generations]
            answers.errors[label] = [generation.error for generation in generations]
            failed = sum(1 for error in answers.errors[label] if error)
            if failed:
                reporter.log(
                    f"{failed} of {len(rows)} prompts got no answer from {label}; they score 0.", "warning"
                )
            if failed == len(rows):
                raise JobFailure(
                    "no_answers",
                    f"{target.contender.display_name} answered none of the prompts.",
                    "Read the job log for the server's reason, then try again.",
                    details={"first_error": answers.errors[label][0]},
                )
            if exam:
                asked = _ask(
                    target,
                    [item.conversation() for item in exam],
                    exam_settings,
                    reporter,
                    "everyday questions",
                )
                answers.exam[label] = [
                    generation.text if not generation.error else None for generation in asked
                ]
    return answers, settings.describe()


def _load_evaluation(job: Job) -> Evaluation:
    evaluation = (
        Evaluation.objects.select_related(
            "adapter__base_model", "model__merged_from__base_model", "dataset_version", "baseline_adapter"
        )
        .filter(pk=job_params(job).evaluation_id)
        .first()
    )
    if evaluation is None:
        raise JobFailure("deleted", "The evaluation was deleted before it started.")
    if evaluation.adapter_id is None and evaluation.model_id is None:
        raise JobFailure("model_deleted", "The model to evaluate was deleted.")
    return evaluation


def run_evaluation(job: Job, reporter: JobReporter) -> dict:
    """Generate and score on a GPU worker; then, with a judge, the same job moves to the data queue,
    where the judge grades the recorded answers (GPU workers, where every user's vLLM listens, never
    call an address a user gave)."""
    evaluation = _load_evaluation(job)
    judged = bool(evaluation.settings.get("judge"))
    handing_over = False
    try:
        if evaluation.scores is None:  # not yet generated and scored (a judge phase finds them recorded)
            _answer_and_score(evaluation, reporter, judge_pending=judged)
        if judged and job.queue != QUEUE_DATA:
            handing_over = True  # the judge phase needs the key
            raise JobHandover(
                QUEUE_DATA,
                "Every answer is scored. The judge is asked from a data worker, not from a GPU worker: "
                "the evaluation waits for one.",
            )
        if judged:
            judge_evaluation(evaluation, reporter)
    finally:
        if not handing_over:
            evaluation_forget_secret(evaluation_id=evaluation.pk)
    evaluation.refresh_from_db(fields=["scores"])
    headline = {label: metrics.get("rougeL", {}).get("value") for label, metrics in evaluation.scores.items()}
    return {"evaluation_id": evaluation.pk, "rows": evaluation.examples.count(), "rougeL": headline}


def _answer_and_score(evaluation: Evaluation, reporter: JobReporter, *, judge_pending: bool) -> None:
    rows = _load_rows(evaluation)
    reporter.log(f"{len(rows)} prompts from {evaluation.dataset_version}.")
    exam = load_exam() if evaluation.settings.get("general_skills") else []
    started = time.monotonic()
    answers, generation_note = _generate(evaluation, rows, reporter, exam)
    reporter.log(f"Generated every answer in {time.monotonic() - started:.0f} s ({generation_note}).")
    report = _score(rows, answers.texts, reporter)
    examples = []
    for position, row in enumerate(rows):
        examples.append(
            {
                **row,
                "answers": {label: texts[position] for label, texts in answers.texts.items()},
                "errors": {label: errs[position] for label, errs in answers.errors.items() if errs[position]},
            }
        )
    general_skills = None
    if exam:
        general_skills = exam_report(exam, answers.exam, candidate=LABEL_TUNED, baseline=LABEL_BASE)
        reporter.log(
            "General skills: "
            + ", ".join(
                f"{label} {right} of {len(exam)} right" for label, right in general_skills["right"].items()
            )
        )
    evaluation_record(
        evaluation=evaluation,
        examples=examples,
        report=report,
        generation_note=generation_note,
        judge_pending=judge_pending,
        general_skills=general_skills,
    )
    headline = {label: metrics.get("rougeL", {}).get("value") for label, metrics in report["scores"].items()}
    reporter.log("Scores: " + ", ".join(f"{label} ROUGE-L {value:.1f}" for label, value in headline.items()))


def _score(rows: list[dict], answers: dict, reporter: JobReporter) -> dict:
    from evals_app.core.report import evaluate_answers
    from evals_app.core.similarity import Embedder, default_embedding_model_dir

    reporter.stage("Scoring the answers (BLEU, chrF, ROUGE, similarity) with confidence intervals")
    embedder = Embedder() if default_embedding_model_dir() is not None else None
    if embedder is None:
        reporter.log("No embedding model is installed, so semantic similarity is left out.", "warning")
    references = [row["reference"] for row in rows]

    def work(on_progress, should_stop):
        return evaluate_answers(
            references=references, answers=answers, embedder=embedder, progress=on_progress
        )

    return in_background(reporter, len(rows), work).to_dict()

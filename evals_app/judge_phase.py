"""The judge phase of an evaluation, on the data queue (the judge's address is the user's): the judge
grades every recorded answer by the rubric and, with a baseline, says which of the two answers to each
prompt is better, both ways round (evals_app/core/pairwise.py), which gives the win rate.
"""

from __future__ import annotations

from evals_app.background import in_background_or_fail
from evals_app.core.bootstrap import bootstrap_mean_ci
from evals_app.core.judge import JudgeItem, JudgeSettings, judge_answers
from evals_app.core.pairwise import PairItem, judge_pairs
from evals_app.models import LABEL_BASE, LABEL_TUNED, Evaluation, EvaluationExample
from evals_app.services import evaluation_record_judge
from jobs.registry import JobFailure
from jobs.reporter import JobReporter
from lathe_common.outbound import OutboundRefused, check_url, outbound_policy


def judge_evaluation(evaluation: Evaluation, reporter: JobReporter) -> None:
    """Ask the judge about every recorded answer, then about each pair; record what it says."""
    config = evaluation.settings["judge"]
    policy = outbound_policy()
    try:
        check_url(config["base_url"], policy)  # again: the name may lead elsewhere since the form
    except OutboundRefused as refused:
        raise JobFailure(
            "judge_address_refused",
            f"Lathe did not call the judge at {config['base_url']}. {refused.message}",
            "Change the judge's address, or run the evaluation without a judge.",
        ) from refused
    settings = JudgeSettings(
        base_url=config["base_url"],
        api_key=evaluation.judge_api_key,
        model=config["model"],
        rubric=config["rubric"],
        outbound=policy,
    )
    examples = list(evaluation.examples.order_by("position"))
    labels = list(examples[0].answers) if examples else []
    verdicts = {label: _grades(examples, label, settings, reporter) for label in labels}
    pairs = None
    if LABEL_TUNED in labels and LABEL_BASE in labels:
        pairs = _pair_verdicts(examples, settings, reporter)
    evaluation_record_judge(
        evaluation=evaluation,
        verdicts={
            label: [{"score": verdict.score, "reason": verdict.reason} for verdict in found]
            for label, found in verdicts.items()
        },
        scores=_judge_scores(verdicts),
        pairs=pairs,
    )


def _asked(settings: JudgeSettings, reporter: JobReporter, total: int, ask):
    """`ask(on_progress, should_stop)`'s result, in the background; JobFailure if the judge is silent."""
    return in_background_or_fail(
        reporter,
        total,
        ask,
        JobFailure(
            "judge_not_answering",
            f"The judge at {settings.base_url} did not answer.",
            "Check the judge's address, model and API key, or run the evaluation without a judge.",
        ),
    )


def _grades(examples: list[EvaluationExample], label: str, settings: JudgeSettings, reporter: JobReporter):
    reporter.stage(f"Asking the judge ({settings.model}) about the {label} answers")
    items = [
        JudgeItem(
            prompt=example.prompt_text, reference=example.reference, answer=example.answers.get(label, "")
        )
        for example in examples
    ]
    found = _asked(
        settings,
        reporter,
        len(items),
        lambda on_progress, should_stop: judge_answers(
            settings=settings, items=items, progress=on_progress, should_stop=should_stop
        ),
    )
    failed = [verdict.error for verdict in found if verdict.error]
    if failed:
        reporter.log(
            f"The judge gave no verdict on {len(failed)} of {len(items)} {label} answers: {failed[0]}",
            "warning",
        )
    return found


def _pair_verdicts(
    examples: list[EvaluationExample], settings: JudgeSettings, reporter: JobReporter
) -> list[dict]:
    """The judge's choice between the two answers of each example, by position."""
    reporter.stage(f"Asking the judge ({settings.model}) which answer is better, each pair both ways round")
    items = [
        PairItem(
            prompt=example.prompt_text,
            reference=example.reference,
            tuned=example.answers.get(LABEL_TUNED, ""),
            base=example.answers.get(LABEL_BASE, ""),
        )
        for example in examples
    ]
    found = _asked(
        settings,
        reporter,
        2 * len(items),
        lambda on_progress, should_stop: judge_pairs(
            settings=settings, items=items, progress=on_progress, should_stop=should_stop
        ),
    )
    undecided = sum(1 for verdict in found if verdict.score is None)
    if undecided:
        reporter.log(f"The judge named no better answer for {undecided} of {len(items)} prompts.", "warning")
    return [
        {"score": verdict.score, "consistent": verdict.consistent, "reason": verdict.reason}
        for verdict in found
    ]


def _judge_scores(verdicts: dict) -> dict:
    """The judge's mean score (1-10) of each label, over the answers it could score."""
    scores = {}
    for label, found in verdicts.items():
        given = [verdict.score for verdict in found if verdict.score is not None]
        if given:
            mean, low, high = bootstrap_mean_ci(given)
            scores[label] = {"value": mean, "low": low, "high": high, "scored": len(given)}
    return scores

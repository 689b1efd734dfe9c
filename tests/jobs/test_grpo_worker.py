"""GRPO through the real worker: the demo model, on top of its supervised adapter, answers each question
twice, the answers are judged against the reference, the charts' right-answer shares reach the job's
events, and a new adapter is saved; GRPO is refused on preference pairs and from another user's adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.models import Job
from jobs.states import JobState
from models_app.models import Adapter
from tests.datasets_app.factories import dataset_with_version, store_rows
from tests.jobs.test_preference_launch import _adapter
from tests.jobs.test_preference_training_worker import preference_version
from tests.jobs.test_training_worker import _finished
from training_app.ml.recipe import Recipe
from training_app.services import TrainingRefused, training_start

pytestmark = pytest.mark.django_db(transaction=True)

# Two learning steps of one question answered twice (batch 1 × accumulation 2), answers of at most 16
# tokens, and an evaluation after each step: about a minute of training on the demo model on a CPU.
GRPO = Recipe(
    objective="grpo",
    reward="facts",
    generations=2,
    batch_size=1,
    grad_accum=2,
    max_answer_tokens=16,
    max_steps=2,
    eval_steps=1,
    save_steps=2,
    lora_r=8,
    lora_alpha=16,
    max_seq_len=128,
    learning_rate=1e-4,
)


def question(index: int) -> dict:
    """A question the shared demo adapter (tests/serving_fixtures.py) was trained to answer, with a short
    factual reference answer."""
    return {
        "messages": [
            {"role": "user", "content": f"What is {index} plus {index}?"},
            {"role": "assistant", "content": f"The answer is {2 * index}."},
        ],
        "source_line": index + 1,
    }


def question_version(owner, train: range, validation: range):
    """A ready conversation version of `train` questions, with `validation` ones held out (few: the
    evaluations and the held-out check after training write answers, the slow part on a CPU)."""
    _, _, version = dataset_with_version(owner, conversations=[question(i) for i in train])
    version.validation_key = store_rows(
        f"tests/{version.dataset_id}/validation.jsonl", [question(i) for i in validation]
    )
    version.validation_rows = len(validation)
    version.save()
    return version


def _metrics(job: Job) -> list[dict]:
    return [event.payload for event in job.events.filter(kind="metric").order_by("pk")]


def _logs(job: Job) -> list[str]:
    return [event.payload.get("message", "") for event in job.events.filter(kind="log").order_by("pk")]


@pytest.mark.worker
@pytest.mark.ml_heavy
def test_grpo_on_top_of_a_supervised_adapter_judges_its_answers_and_saves_an_adapter(
    alice, demo_base_model, make_adapter, celery_worker
):
    version = question_version(alice, train=range(3, 7), validation=range(11, 12))
    start = make_adapter(alice)
    none_right = {"verdict": {"right": 0, "total": 4}}  # its own run's held-out check
    start.job = Job.objects.create(owner=alice, kind="train", queue="gpu", result=none_right)
    start.save(update_fields=["job"])
    job = training_start(
        owner=alice, dataset_version=version, base_model=demo_base_model, recipe=GRPO, start_adapter=start
    )
    assert job.params["start_adapter_id"] == start.pk
    job = _finished(job.pk, timeout=600)
    assert job.state == JobState.SUCCEEDED, job.error

    adapter = Adapter.objects.get(job=job)
    assert adapter.base_model == demo_base_model and adapter.pk != start.pk
    assert Path(adapter.path) != Path(start.path)  # a new folder: the adapter started from is left as it was
    assert (Path(adapter.path) / "adapter_config.json").is_file()

    metrics = _metrics(job)
    assert [point["step"] for point in metrics] == [1, 2]
    for point in metrics:
        # The share of right answers on the step's training questions and, evaluated after each step, on
        # the validation questions; the answers' mean length in tokens, at most max_answer_tokens.
        assert 0 <= point["right_answers"] <= 1
        assert 0 <= point["eval_right_answers"] <= 1
        assert 0 < point["answer_tokens"] <= GRPO.max_answer_tokens
        assert point["reward"] is not None and point["eval_reward"] is not None

    logs = _logs(job)
    assert any(line.startswith("4 training questions and 1 for validation") for line in logs), logs
    said = next(line for line in logs if "by GRPO (" in line)
    assert "2 answers per question of up to 16 tokens, reward 'facts'" in said
    assert "on top of the supervised adapter" in said
    # Before it trained, the log said what the start adapter's held-out check promised: little to reinforce.
    outlook = [e.payload for e in job.events.filter(kind="log") if "right after its" in e.payload["message"]]
    assert [entry["level"] for entry in outlook] == ["warning"]
    assert "answered 0 of 4 held-out questions" in outlook[0]["message"]
    assert "little to reinforce" in outlook[0]["message"]
    # The run went on from the supervised adapter: the first sample answers (greedy, to the validation
    # questions) open as its training data taught, which the demo model never does on its own.
    samples = job.events.filter(kind="samples").order_by("pk").first().payload["samples"]
    assert any(sample["answer"].startswith("Lathe lathe lathe!") for sample in samples), samples
    # The held-out check runs after GRPO as after a supervised run.
    assert job.events.filter(kind="verdict").count() == 1
    assert job.result["verdict"]["total"] == 1


def test_grpo_is_refused_on_preference_pairs_and_from_another_users_adapter(alice, bob, demo_base_model):
    with pytest.raises(TrainingRefused, match="GRPO learns from questions with their right answer"):
        training_start(
            owner=alice, dataset_version=preference_version(alice), base_model=demo_base_model, recipe=GRPO
        )
    _, _, questions = dataset_with_version(alice, conversations=[question(i) for i in range(3)])
    with pytest.raises(TrainingRefused, match="not one of yours"):
        training_start(
            owner=alice,
            dataset_version=questions,
            base_model=demo_base_model,
            recipe=GRPO,
            start_adapter=_adapter(bob, demo_base_model),
        )
    assert not Job.objects.exists()

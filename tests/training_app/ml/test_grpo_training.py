"""GRPO plumbing on the tiny model: questions in, the charts' right-answer events out, the best checkpoint
kept by its share of right validation answers, one adapter saved; the step count the plan announces is the
trainer's.

Whether the rewards are right is tests/training_app/ml/test_rewards.py; a GRPO job from a supervised
adapter on the worker is tests/jobs/test_grpo_worker.py; whether GRPO helps is bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training_app.ml.conftest import conversation, train_recorded, write_jsonl
from training_app.ml.errors import TrainingDataError
from training_app.ml.recipe import Recipe, RecipeError
from training_app.ml.reinforcement import EVAL_QUESTIONS, learning_signal_note, prepare_questions, question

GRPO_RECIPE = Recipe(
    objective="grpo",
    lora_r=4,
    lora_alpha=8,
    batch_size=2,
    grad_accum=2,
    generations=2,
    max_answer_tokens=8,
    max_steps=4,
    eval_steps=2,
    save_steps=2,
    learning_rate=1e-3,
    warmup_ratio=0.0,
)
NO_ANSWER = {"messages": [{"role": "user", "content": "Anyone there?"}], "source_line": 99}


@pytest.fixture(scope="module")
def grpo_run(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grpo")
    train_rows = [conversation(index) for index in range(8)] + [NO_ANSWER]
    validation_rows = [conversation(index) for index in range(40, 43)]
    return train_recorded(tiny_model_dir, folder, GRPO_RECIPE, train_rows, validation_rows)


def test_every_step_and_evaluation_reports_the_right_answers_the_charts_draw(grpo_run):
    result, events = grpo_run
    metrics = [event for event in events if event["type"] == "metrics"]
    evaluations = [event for event in events if event["type"] == "eval"]
    assert [event["step"] for event in metrics] == [1, 2, 3, 4]
    assert [event["step"] for event in evaluations] == [2, 4]
    for event in metrics + evaluations:
        assert 0 <= event["right_answers"] <= 1 and 0 <= event["reward"] <= 1
        assert 0 < event["answer_tokens"] <= GRPO_RECIPE.max_answer_tokens
        assert 0 <= event["nothing_to_learn"] <= 1
    # A step that is evaluated carries that evaluation's values, as the charts place them.
    assert metrics[1]["eval_right_answers"] == evaluations[0]["right_answers"]
    assert metrics[3]["eval_right_answers"] == evaluations[1]["right_answers"]
    assert metrics[0]["eval_right_answers"] is None


def test_the_run_says_what_it_trains_and_keeps_the_best_by_right_answers(grpo_run):
    result, events = grpo_run
    logs = " ".join(event["message"] for event in events if event["type"] == "log")
    assert "8 training questions and 3 for validation" in logs
    assert "by GRPO (2 answers per question of up to 8 tokens, reward 'facts'" in logs
    assert "1 training rows were left out: no answer to learn from (lines 99)" in logs
    assert "right answers to validation questions and sample answers every 2" in logs
    assert result.dropped_rows == 1
    # The kept checkpoint is one of the evaluated ones, chosen by right answers: no loss is reported as its.
    assert result.best_step in (2, 4) and result.best_eval_loss is None
    assert f"Keeping the weights of step {result.best_step}" in logs
    assert (Path(result.adapter_dir) / "adapter_config.json").is_file()
    # GRPO's data is conversations, so the held-out check after training runs as for supervised runs.
    assert result.verdict is not None and result.verdict["total"] == 3


def test_the_steps_the_plan_announces_are_the_trainers(tiny_model_dir, tmp_path):
    # 6 questions, 2 answers each, 4 answers per step: 3 steps a pass, 2 passes.
    recipe = GRPO_RECIPE.replace(max_steps=None, num_epochs=2, eval_steps=None, save_steps=None)
    rows = [conversation(index) for index in range(6)]
    _, events = train_recorded(tiny_model_dir, tmp_path, recipe.replace(keep_best=False), rows, None)
    assert recipe.total_steps(6) == 6
    assert [event["max_steps"] for event in events if event["type"] == "progress"][-1] == 6


def test_a_question_is_the_conversation_before_its_last_answer_which_is_the_reference():
    row = conversation(3)
    assert question(row) == {"prompt": row["messages"][:2], "reference": "3 plus 3 is 6."}
    assert question(NO_ANSWER) is None
    assert (
        question({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}]})
        is None
    )


def test_validation_asks_a_bounded_number_of_questions_and_no_questions_is_refused(tmp_path):
    rows = [conversation(index) for index in range(EVAL_QUESTIONS + 10)]
    train_path = write_jsonl(tmp_path / "train.jsonl", rows)
    data = prepare_questions(train_path=train_path, validation_path=train_path)
    assert data.train_rows == len(rows) and data.validation_rows == EVAL_QUESTIONS
    empty = write_jsonl(tmp_path / "empty.jsonl", [NO_ANSWER])
    with pytest.raises(TrainingDataError, match="no questions with an answer"):
        prepare_questions(train_path=empty, validation_path=None)


def test_the_recipe_wants_whole_groups_of_answers_per_step_and_no_rehearsal():
    with pytest.raises(RecipeError) as error:
        Recipe(objective="grpo", batch_size=1, grad_accum=6, generations=4)
    assert "must divide batch size times accumulation (6)" in error.value.errors["generations"]
    with pytest.raises(RecipeError) as error:
        Recipe(objective="grpo", rehearsal=0.5)
    assert "set it to 0 for GRPO" in error.value.errors["rehearsal"]
    assert Recipe(objective="grpo").reinforced and not Recipe(objective="grpo").preference
    with pytest.raises(RecipeError):
        Recipe(objective="grpo", reward="vibes")


def test_a_run_with_little_to_learn_from_says_why_and_what_to_do():
    # Most questions' answers all right: nothing left to reinforce.
    solved = learning_signal_note([(1.0, 1.0), (0.5, 0.875), (1.0, 1.0)])
    assert solved.startswith("For 83% of the questions, every answer the model wrote scored the same")
    assert "it already answered them right (96% of its answers were)" in solved
    # Most all wrong: a supervised adapter first.
    unsolved = learning_signal_note([(1.0, 0.0), (0.75, 0.125)])
    assert "they were wrong (6% of its answers were right)" in unsolved
    assert "start GRPO from a supervised adapter that knows these conversations better" in unsolved
    # Enough questions with answers of different worth: nothing to say.
    assert learning_signal_note([(0.25, 0.5), (0.5, 0.5)]) is None
    assert learning_signal_note([]) is None

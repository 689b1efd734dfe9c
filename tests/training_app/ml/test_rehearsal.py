"""Rehearsal: which general questions are asked, how the base model's answers are kept and mixed in.

The mixing runs with the real demo model once (its own answers, cached); the rest is the plain logic
around it, checked with answer functions that say what they were asked."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from evals_app.core.general_skills import load_exam
from tests.training_app.ml.conftest import conversation, write_jsonl
from training_app.ml.answers import generate_answers
from training_app.ml.components import load_model, load_tokenizer
from training_app.ml.recipe import Recipe
from training_app.ml.rehearsal import (
    AnswerCache,
    RehearsalPrompt,
    answer_with_model,
    base_model_answers,
    chinese_share,
    interleaved,
    load_rehearsal_prompts,
    mix_rehearsal,
    pick_prompts,
    rehearsal_count,
)

PROMPTS = load_rehearsal_prompts()


def _chinese(index: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"第{index}条规定是什么？"},
            {"role": "assistant", "content": "是。"},
        ]
    }


def test_the_questions_are_general_balanced_and_none_of_them_is_the_skills_checks():
    assert len(PROMPTS) == 100 and len({p.id for p in PROMPTS}) == 100
    assert Counter(p.language for p in PROMPTS) == {"en": 50, "zh": 50}
    exam = {item.prompt for item in load_exam()}
    assert not exam & {p.prompt for p in PROMPTS}  # the check must measure what rehearsal kept, not recite it


@pytest.mark.parametrize(
    ("rows", "share", "expected"),
    [(20, 0.5, 10), (7, 0.25, 2), (1000, 0.5, 100), (20, 0.0, 0), (0, 0.5, 0), (3, 1.0, 3)],
)
def test_the_number_of_rehearsal_conversations_follows_the_share_up_to_the_questions(rows, share, expected):
    assert rehearsal_count(rows, share, available=100) == expected


def test_the_questions_follow_the_language_of_the_users_data_and_the_seed():
    rows = [conversation(i) for i in range(3)] + [_chinese(i) for i in range(9)]
    assert chinese_share(rows) == 0.75 and chinese_share([]) == 0.0
    picked = pick_prompts(PROMPTS, 20, chinese=0.75, seed=1)
    assert Counter(p.language for p in picked) == {"zh": 15, "en": 5}
    assert picked == pick_prompts(PROMPTS, 20, chinese=0.75, seed=1)
    assert picked != pick_prompts(PROMPTS, 20, chinese=0.75, seed=2)
    # 80 asked of data all in Chinese: the 50 Chinese questions and 30 English ones make up the rest.
    assert Counter(p.language for p in pick_prompts(PROMPTS, 80, chinese=1.0, seed=1)) == {"zh": 50, "en": 30}


def test_rehearsal_rows_are_spread_through_the_users_rows_in_order():
    rows = [{"n": i} for i in range(8)]
    rehearsed = [{"r": i} for i in range(4)]
    mixed = interleaved(rows, rehearsed)
    assert [row for row in mixed if "n" in row] == rows and [row for row in mixed if "r" in row] == rehearsed
    assert sum("r" in row for row in mixed[:6]) == 2  # a trial run's first rows hold their share
    assert interleaved(rows, []) == rows


def _asked(log: list[list[str]], answers: dict[str, tuple[str, bool]]):
    def answer(prompts: list[RehearsalPrompt], progress) -> list[tuple[str, bool]]:
        log.append([p.id for p in prompts])
        progress(len(prompts), len(prompts))
        return [answers[p.id] for p in prompts]

    return answer


def test_answers_are_cached_per_model_and_cut_off_ones_are_left_out(tmp_path: Path):
    prompts = PROMPTS[:3]
    answers = {
        prompts[0].id: ("Done.", True),
        prompts[1].id: ("It goes on and on", False),
        prompts[2].id: ("", True),
    }
    asked: list[list[str]] = []
    cache = AnswerCache(tmp_path / "model.jsonl")
    kept, written = base_model_answers(prompts, cache, _asked(asked, answers))
    assert kept == {prompts[0].id: "Done."} and written == 3 and asked == [[p.id for p in prompts]]

    again, written = base_model_answers(
        prompts, AnswerCache(tmp_path / "model.jsonl"), _asked(asked, answers)
    )
    assert again == kept and written == 0 and len(asked) == 1  # nothing asked twice

    # A question reworded in a later Lathe is asked again; a line cut short by a crash is ignored.
    with open(tmp_path / "model.jsonl", "ab") as handle:
        handle.write(b'{"id": "en-')
    reworded = RehearsalPrompt(id=prompts[0].id, language="en", prompt="Something else entirely.")
    answers[reworded.id] = ("New answer.", True)
    kept, written = base_model_answers(
        [reworded], AnswerCache(tmp_path / "model.jsonl"), _asked(asked, answers)
    )
    assert kept == {reworded.id: "New answer."} and written == 1 and asked[-1] == [reworded.id]


def test_generation_says_which_answers_the_model_ended_itself(demo_model_dir):
    recipe = Recipe()
    model = load_model(demo_model_dir, recipe, precision="fp32")
    tokenizer = load_tokenizer(demo_model_dir)
    question = [[{"role": "user", "content": "What is the capital of Japan? Answer with one word."}]]
    finished: list[bool] = []
    generate_answers(model, tokenizer, question * 2, max_new_tokens=32, finished=finished)
    generate_answers(model, tokenizer, question, max_new_tokens=1, finished=finished)
    assert finished == [True, True, False]


def test_the_base_models_own_answers_join_the_training_rows(demo_model_dir, tmp_path: Path):
    train = write_jsonl(tmp_path / "train.jsonl", [conversation(i) for i in range(6)])
    cache = AnswerCache(tmp_path / "cache" / "demo.jsonl")
    answer = answer_with_model(demo_model_dir, Recipe(precision="fp32"))
    prompts = [p for p in PROMPTS if p.language == "en"][:4]
    progress: list[tuple[int, int]] = []
    mix = mix_rehearsal(
        train_path=train,
        output_path=tmp_path / "job" / "mixed.jsonl",
        share=0.5,
        seed=7,
        cache=cache,
        answer=answer,
        progress=lambda done, total: progress.append((done, total)),
        prompts=prompts,
    )
    rows = [orjson.loads(line) for line in mix.path.read_bytes().splitlines()]
    own = [row for row in rows if not row.get("rehearsal")]
    rehearsed = [row for row in rows if row.get("rehearsal")]
    assert own == [conversation(i) for i in range(6)]  # the user's rows, untouched and in order
    assert mix.asked == 3 and mix.written == 3 and progress[-1] == (3, 3)
    assert len(rehearsed) == mix.added >= 1  # the demo model ends most short answers within 192 tokens
    entries = {entry["id"]: entry for entry in cache.entries.values()}
    for row in rehearsed:
        question, reply = row["messages"]
        entry = next(e for e in entries.values() if e["prompt"] == question["content"])
        assert entry["finished"] and reply == {"role": "assistant", "content": entry["answer"]}
        assert row["source_line"] == 0

    # The same run again (a resumed job): the same file, nothing written again.
    again = mix_rehearsal(
        train_path=train,
        output_path=tmp_path / "job" / "again.jsonl",
        share=0.5,
        seed=7,
        cache=AnswerCache(tmp_path / "cache" / "demo.jsonl"),
        answer=_asked([], {}),
        prompts=prompts,
    )
    assert again.written == 0 and again.path.read_bytes() == mix.path.read_bytes()

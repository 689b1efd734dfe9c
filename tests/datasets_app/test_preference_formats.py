"""Preference files (OpenAI's, trl's paired rows, KTO's rated answers) are checked line by line like
instruction files: each good line becomes a canonical row (the prompt and the preferred answer as its
conversation, the other answer beside it), each broken line gets its exact line number and category."""

from __future__ import annotations

import json

import orjson
import pytest

from datasets_app.core.validate import validate_file

USER = {"role": "user", "content": "What is the capital of France?"}
GOOD = {"role": "assistant", "content": "Paris."}
BAD = {"role": "assistant", "content": "Lyon, I think."}

OPENAI = [
    {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [BAD]},  # 1 good
    {"input": {"messages": [USER]}, "preferred_output": [GOOD]},  # 2 missing side
    {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [GOOD]},  # 3 same
    {"input": {"messages": [USER, GOOD]}, "preferred_output": [GOOD], "non_preferred_output": [BAD]},  # 4
    {
        "input": {"messages": [USER]},
        "preferred_output": [USER],
        "non_preferred_output": [BAD],
    },  # 5 a user turn
    {"input": "What?", "preferred_output": [GOOD], "non_preferred_output": [BAD]},  # 6 input not an object
    {
        "input": {"messages": [{"role": "system", "content": "Be brief."}, USER]},
        "preferred_output": [GOOD],
        "non_preferred_output": [BAD],
    },  # 7 good, with a system prompt
]
TRL = [
    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Lyon."},  # 1 good, plain
    {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]},  # 2 good, conversational
    {"chosen": [USER, GOOD], "rejected": [USER, BAD]},  # 3 good, implicit prompt
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": " Paris. "},  # 4 the same answer
    {"prompt": "Capital of France?", "chosen": "Paris."},  # 5 no rejected
    {"prompt": "", "chosen": "Paris.", "rejected": "Lyon."},  # 6 empty prompt
    {"chosen": "Paris.", "rejected": "Lyon."},  # 7 plain text with no prompt
    {"chosen": [USER, GOOD], "rejected": [{"role": "user", "content": "Other?"}, BAD]},  # 8 nothing shared
    {"prompt": [USER], "chosen": [GOOD], "rejected": 7},  # 9 a number
]
KTO = [
    {"prompt": "Capital of France?", "completion": "Paris.", "label": True},  # 1 good
    {"prompt": "Capital of France?", "completion": "Lyon.", "label": False},  # 2 good
    {"prompt": "Capital of France?", "completion": "Paris.", "label": "yes"},  # 3 label not true/false
    {"prompt": [USER, GOOD], "completion": "Paris.", "label": True},  # 4 prompt ends with an answer
]


def _check(tmp_path, rows: list[dict]):
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    canonical, errors = tmp_path / "canonical.jsonl", tmp_path / "errors.jsonl"
    report = validate_file(source, canonical_out=canonical, errors_out=errors)
    found = {entry["line"]: entry for entry in map(orjson.loads, errors.read_bytes().splitlines())}
    return report, [orjson.loads(line) for line in canonical.read_bytes().splitlines()], found


@pytest.mark.parametrize(
    ("rows", "format_name", "good_lines", "bad_lines"),
    [
        (
            OPENAI,
            "openai_preference",
            [1, 7],
            {
                2: "missing_field",
                3: "identical_pair",
                4: "bad_turn_order",
                5: "bad_turn_order",
                6: "wrong_type",
            },
        ),
        (
            TRL,
            "preference",
            [1, 2, 3],
            {
                4: "identical_pair",
                5: "missing_field",
                6: "empty_content",
                7: "missing_field",
                8: "missing_field",
                9: "wrong_type",
            },
        ),
        (KTO, "kto", [1, 2], {3: "wrong_type", 4: "bad_turn_order"}),
    ],
    ids=["openai", "trl", "kto"],
)
def test_each_line_is_kept_or_explained(tmp_path, rows, format_name, good_lines, bad_lines):
    report, canonical, errors = _check(tmp_path, rows)
    assert report.format == format_name and report.rows == len(rows) and report.valid_rows == len(good_lines)
    assert [row["source_line"] for row in canonical] == good_lines
    assert {line: entry["category"] for line, entry in errors.items()} == bad_lines


def test_the_messages_say_what_is_wrong_and_what_to_do(tmp_path):
    _, _, errors = _check(tmp_path, OPENAI)
    assert errors[2]["message"].startswith('Line 2 has no "non_preferred_output" field')
    assert "the preferred answer and the other answer are the same" in errors[3]["message"]
    assert errors[4]["message"].startswith('Line 4: "input.messages" ends with an answer from the assistant')
    assert 'Message 2 on line 5 is in "preferred_output" with the role "user"' in errors[5]["message"]
    _, _, errors = _check(tmp_path, TRL)
    assert "do not start with the same question" in errors[8]["message"]


def test_canonical_rows_hold_the_prompt_with_the_preferred_answer_and_the_other_beside_it(tmp_path):
    _, canonical, _ = _check(tmp_path, TRL[:3])
    plain, conversational, implicit = canonical
    assert plain["messages"] == [{"role": "user", "content": "What is the capital of France?"}, GOOD]
    assert plain["rejected"] == [{"role": "assistant", "content": "Lyon."}]
    assert conversational["messages"] == implicit["messages"] == [USER, GOOD]
    assert conversational["rejected"] == implicit["rejected"] == [BAD]
    _, canonical, _ = _check(tmp_path, KTO[:2])
    assert [row["label"] for row in canonical] == [True, False]
    assert canonical[1]["messages"][-1] == {"role": "assistant", "content": "Lyon."}


def test_a_preference_line_in_an_instruction_file_is_a_different_format(tmp_path):
    rows = [{"instruction": f"Q{i}", "output": f"A{i}"} for i in range(3)] + [TRL[0]]
    report, canonical, errors = _check(tmp_path, rows)
    assert report.format == "alpaca" and len(canonical) == 3
    assert errors[4]["category"] == "mixed_formats"

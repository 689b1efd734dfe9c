"""Format detection and normalisation to canonical messages."""

from __future__ import annotations

import pytest

from datasets_app.core.formats import RowError, apply_mapping, detect_format, normalize


def problem_of(row: dict, format_name: str | None = None) -> tuple[str, dict]:
    with pytest.raises(RowError) as caught:
        normalize(row, format_name or detect_format(row))
    return caught.value.problem, caught.value.params


def test_it_detects_formats_by_signature_keys_in_priority_order():
    assert detect_format({"messages": [], "instruction": "x"}) == "messages"
    assert detect_format({"conversations": [], "output": "x"}) == "sharegpt"
    assert detect_format({"instruction": "x", "prompt": "y"}) == "alpaca"
    assert detect_format({"output": "x"}) == "alpaca"
    assert detect_format({"prompt": "x", "completion": "y"}) == "prompt_completion"
    assert detect_format({"question": "x"}) is None


def test_it_renames_fields_with_a_mapping_and_the_mapping_wins():
    row = {"question": "q", "answer": "a", "instruction": "old"}
    mapped = apply_mapping(row, {"question": "instruction", "answer": "output"})
    assert mapped == {"instruction": "q", "output": "a"}
    assert apply_mapping({"x": 1}, {"question": "instruction"}) == {"x": 1}


def test_it_turns_alpaca_into_user_and_assistant_turns():
    row = {"instruction": "Add", "input": "1+1", "output": "2"}
    assert normalize(row, "alpaca") == [
        {"role": "user", "content": "Add\n\n1+1"},
        {"role": "assistant", "content": "2"},
    ]


def test_it_treats_a_null_alpaca_input_as_no_input():
    row = {"instruction": "Say hi", "input": None, "output": "Hi"}
    assert normalize(row, "alpaca")[0] == {"role": "user", "content": "Say hi"}


def test_it_puts_alpaca_system_and_history_before_the_last_turn():
    row = {
        "system": "Be brief.",
        "history": [["Hi", "Hello"]],
        "instruction": "Bye",
        "output": "Goodbye",
    }
    assert [message["role"] for message in normalize(row, "alpaca")] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_it_reports_alpaca_problems():
    assert problem_of({"instruction": "x"}) == ("missing_field", {"field": "output", "format": "alpaca"})
    assert problem_of({"instruction": "x", "output": "  "})[0] == "empty_content"
    assert problem_of({"instruction": "x", "output": 3})[1]["actual"] == "a number"
    assert problem_of({"instruction": "x", "output": "y", "history": [["only one"]]})[0] == "wrong_type"


def test_it_joins_text_parts_and_keeps_tool_call_fields():
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42", "tool_call_id": "1", "name": "calc"},
            {"role": "assistant", "content": "It is 42."},
        ]
    }
    messages = normalize(row, "messages")
    assert messages[0]["content"] == "a\nb"
    assert messages[1] == {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]}
    assert messages[2] == {"role": "tool", "content": "42", "name": "calc", "tool_call_id": "1"}


def test_it_reports_message_problems_with_the_message_number():
    user = {"role": "user", "content": "q"}
    answer = {"role": "assistant", "content": "a"}
    assert problem_of({"messages": [user, {"role": "bot", "content": "a"}]})[0:2] == (
        "unknown_role",
        {"role": "bot", "index": 2, "allowed": "system, user, assistant, tool"},
    )
    assert problem_of({"messages": [user, {"role": "assistant"}]})[1]["index"] == 2
    assert problem_of({"messages": [user]}) == ("no_assistant_turn", {})
    assert problem_of({"messages": [answer, user, answer]}) == ("assistant_first", {})
    system = {"role": "system", "content": "s"}
    assert problem_of({"messages": [user, system, answer]}) == ("system_not_first", {"index": 2})
    assert problem_of({"messages": "hello"})[0] == "wrong_type"
    image = {"type": "image_url", "image_url": {"url": "x"}}
    assert problem_of({"messages": [{"role": "user", "content": [image]}, answer]})[0] == "wrong_type"


def test_it_maps_sharegpt_speakers_to_roles():
    row = {
        "system": "Be kind.",
        "conversations": [
            {"from": "human", "value": "weather?"},
            {"from": "function_call", "value": '{"name": "weather"}'},
            {"from": "observation", "value": "sunny"},
            {"from": "gpt", "value": "It is sunny."},
        ],
    }
    roles = [message["role"] for message in normalize(row, "sharegpt")]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]


def test_it_reports_an_unknown_sharegpt_speaker():
    row = {"conversations": [{"from": "narrator", "value": "Once"}]}
    problem, params = problem_of(row)
    assert (problem, params["role"], params["index"]) == ("unknown_role", "narrator", 1)


def test_it_turns_prompt_completion_into_two_turns_or_chat_lists():
    assert normalize({"prompt": "p", "completion": "c"}, "prompt_completion") == [
        {"role": "user", "content": "p"},
        {"role": "assistant", "content": "c"},
    ]
    row = {
        "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "p"}],
        "completion": [{"role": "assistant", "content": "c"}],
    }
    assert [message["role"] for message in normalize(row, "prompt_completion")] == [
        "system",
        "user",
        "assistant",
    ]
    assert problem_of({"prompt": "p"})[1]["field"] == "completion"

"""Preference rows (for DPO and its kin), detected and normalised like the instruction formats.

Three input formats, detected by their signature keys (before the instruction formats: trl's rows also
have a "prompt"):

``preferred_output``    OpenAI's preference fine-tuning: ``{"input": {"messages": [...]},
  (format               "preferred_output": [assistant messages], "non_preferred_output": [...]}``.
  "openai_preference")
``chosen/rejected``     trl's paired rows: ``prompt`` with ``chosen`` and ``rejected``, each plain text
  (format "preference") or a list of chat messages; or, without a prompt, ``chosen`` and ``rejected`` as
                        whole conversations that share their first turns (trl's implicit prompt).
``label``               trl's unpaired rows (KTO): ``prompt``, ``completion`` and ``label``, true for
  (format "kto")        a good answer and false for a bad one.

The canonical row keeps the shape every other part reads: ``messages`` is the prompt followed by the
preferred answer (or the KTO completion), so statistics, duplicates and the cleaning rules see a
conversation as always; the other answer rides along as ``rejected`` (assistant messages), and a KTO row
carries its ``label``. Problems raise :class:`RowError` with their own categories (identical answers,
a prompt that already ends with the assistant's turn, an answer that is not the assistant's).
"""

from __future__ import annotations

from datasets_app.core.canonical import Message
from datasets_app.core.formats import (
    RowError,
    _chat_message,
    _check_turns,
    _message_list,
    _text,
    kind_of,
)


def _openai_preference(row: dict) -> dict:
    for field in ("input", "preferred_output", "non_preferred_output"):
        if field not in row:
            raise RowError("missing_field", field=field, format="OpenAI preference")
    given = row["input"]
    if type(given) is not dict or "messages" not in given:
        actual = kind_of(given) if type(given) is not dict else "an object without messages"
        raise RowError(
            "wrong_type", field="input", expected='an object like {"messages": [...]}', actual=actual
        )
    prompt = _prompt_messages(given["messages"], "input.messages")
    chosen = _answer(row["preferred_output"], "preferred_output", len(prompt))
    rejected = _answer(row["non_preferred_output"], "non_preferred_output", len(prompt))
    return _pair(prompt, chosen, rejected)


def _trl_preference(row: dict) -> dict:
    for field in ("chosen", "rejected"):
        if field not in row:
            raise RowError("missing_field", field=field, format="preference")
    chosen, rejected = row["chosen"], row["rejected"]
    if "prompt" not in row:
        if type(chosen) is not list or type(rejected) is not list:
            raise RowError("missing_field", field="prompt", format="preference")
        return _implicit_prompt(chosen, rejected)
    prompt_value = row["prompt"]
    if type(prompt_value) is list:
        prompt = _prompt_messages(prompt_value, "prompt")
    else:
        prompt = [{"role": "user", "content": _text(prompt_value, "prompt")}]
    return _pair(prompt, _answer(chosen, "chosen", len(prompt)), _answer(rejected, "rejected", len(prompt)))


def _kto(row: dict) -> dict:
    for field in ("prompt", "completion", "label"):
        if field not in row:
            raise RowError("missing_field", field=field, format="rated answer (KTO)")
    label = row["label"]
    if type(label) is not bool:
        raise RowError("wrong_type", field="label", expected="true or false", actual=kind_of(label))
    prompt_value = row["prompt"]
    if type(prompt_value) is list:
        prompt = _prompt_messages(prompt_value, "prompt")
    else:
        prompt = [{"role": "user", "content": _text(prompt_value, "prompt")}]
    messages = prompt + _answer(row["completion"], "completion", len(prompt))
    return {"messages": messages, "label": label}


def _prompt_messages(value: object, field: str) -> list[Message]:
    messages = [_chat_message(item, index) for index, item in enumerate(_message_list(value, field), 1)]
    if messages[-1]["role"] == "assistant":
        raise RowError("prompt_ends_with_assistant", field=field)
    if all(message["role"] == "system" for message in messages):
        raise RowError("no_user_turn", field=field)
    return messages


def _answer(value: object, field: str, offset: int) -> list[Message]:
    """One side's answer: plain text, or a list of the assistant's messages."""
    if type(value) is not list:
        return [{"role": "assistant", "content": _text(value, field)}]
    answer = [_chat_message(item, index) for index, item in enumerate(_message_list(value, field), 1)]
    for index, message in enumerate(answer, 1):
        if message["role"] != "assistant":
            raise RowError("answer_not_assistant", field=field, index=offset + index, role=message["role"])
    return answer


def _implicit_prompt(chosen: list, rejected: list) -> dict:
    """trl's rows without a prompt: two whole conversations, the shared first turns being the prompt."""
    whole_chosen = [
        _chat_message(item, index) for index, item in enumerate(_message_list(chosen, "chosen"), 1)
    ]
    whole_rejected = [
        _chat_message(item, index) for index, item in enumerate(_message_list(rejected, "rejected"), 1)
    ]
    shared = 0
    while (
        shared < min(len(whole_chosen), len(whole_rejected)) - 1
        and whole_chosen[shared] == whole_rejected[shared]
    ):
        shared += 1
    if shared == 0:
        raise RowError("no_shared_prompt")
    prompt = whole_chosen[:shared]
    if prompt[-1]["role"] == "assistant":
        raise RowError("prompt_ends_with_assistant", field="chosen")
    return _pair(
        prompt,
        _answer(whole_chosen[shared:], "chosen", shared),
        _answer(whole_rejected[shared:], "rejected", shared),
    )


def _pair(prompt: list[Message], chosen: list[Message], rejected: list[Message]) -> dict:
    if [m["content"].strip() for m in chosen] == [m["content"].strip() for m in rejected]:
        raise RowError("identical_pair")
    messages = prompt + chosen
    _check_turns(messages)
    return {"messages": messages, "rejected": rejected}


PREFERENCE_NORMALIZERS = {
    "openai_preference": _openai_preference,
    "preference": _trl_preference,
    "kto": _kto,
}

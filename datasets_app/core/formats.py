"""Which training format a row is in, and its canonical messages.

Four instruction formats (and three preference formats: datasets_app/core/preference.py),
detected per row by their signature keys, first match wins:

``messages``            OpenAI chat: ``{"messages": [{"role", "content"}, ...]}``.
                        Roles system/user/assistant/tool. ``content`` is text or
                        a list of ``{"type": "text", "text": ...}`` parts (joined
                        with newlines). An assistant message with ``tool_calls``
                        may have empty or null content. ``name``, ``tool_calls``
                        and ``tool_call_id`` are kept.
``conversations``       ShareGPT: ``{"conversations": [{"from", "value"}, ...]}``
  (format "sharegpt")   and an optional top-level ``system``. ``from`` is mapped
                        by :data:`SHAREGPT_ROLES`: human/user -> user,
                        gpt/assistant/chatgpt/model -> assistant, system ->
                        system, function_call -> assistant (the call, as text:
                        it is what the model must learn to write), observation/
                        tool/function -> tool (a tool's answer). Items written
                        as ``{"role", "content"}`` are accepted too.
``instruction/output``  Alpaca: ``instruction``, ``input``, ``output``, optional
  (format "alpaca")     ``system`` and ``history`` (a list of [user, assistant]
                        pairs). The user turn is the instruction, plus a blank
                        line and the input when there is one (``null`` is none).
``prompt/completion``   ``prompt`` -> user, ``completion`` -> assistant; either
                        may also be a list of chat messages (TRL's layout).

Problems raise :class:`RowError` with a problem name from
:mod:`datasets_app.core.categories` and the fields its message needs; the
wording lives there, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from datasets_app.core.canonical import ROLES, Message


class RowError(Exception):
    """A row cannot be used. ``problem`` names the message template."""

    def __init__(self, problem: str, **params: object) -> None:
        super().__init__(problem)
        self.problem = problem
        self.params = params


FORMAT_TITLES: dict[str, str] = {
    "alpaca": "Alpaca (instruction/output)",
    "messages": "chat messages",
    "sharegpt": "ShareGPT (conversations)",
    "prompt_completion": "prompt/completion",
    "openai_preference": "OpenAI preference pairs (preferred_output/non_preferred_output)",
    "preference": "preference pairs (prompt/chosen/rejected)",
    "kto": "rated answers (prompt/completion/label)",
}

SHAREGPT_ROLES: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}
_ROLE_SET = frozenset(ROLES)
_CHAT_ROLES_TEXT = "system, user, assistant, tool"
_SHAREGPT_ROLES_TEXT = "human, gpt, system, function_call, observation"
_TEXT = "text in quotes"


def apply_mapping(row: dict, mapping: Mapping[str, str]) -> dict:
    """Rename the row's top-level keys (``{"question": "instruction"}``).

    A mapped key wins over a key already carrying the target name, because the
    user chose the mapping knowing their file.
    """
    if not any(source in row for source in mapping):
        return row
    mapped = {key: value for key, value in row.items() if key not in mapping}
    for source, target in mapping.items():
        if source in row:
            mapped[target] = row[source]
    return mapped


def detect_format(row: dict) -> str | None:
    """The row's format from its signature keys, or None when it has none. Preference rows first:
    trl's also have a "prompt" (datasets_app/core/preference.py)."""
    if "preferred_output" in row or "non_preferred_output" in row:
        return "openai_preference"
    if "chosen" in row or "rejected" in row:
        return "preference"
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row or "output" in row:
        return "alpaca"
    if "label" in row and "completion" in row:
        return "kto"
    if "prompt" in row or "completion" in row:
        return "prompt_completion"
    return None


def normalize(row: dict, format_name: str) -> list[Message]:
    """The row's conversation as canonical messages; raises :class:`RowError`."""
    return NORMALIZERS[format_name](row)


def kind_of(value: object) -> str:
    """What a JSON value is, in plain words."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list [ ... ]"
    return "an object { ... }"


def _text(value: object, field: str, index: int | None = None) -> str:
    """A required, non-empty text value."""
    if type(value) is str and value and not value.isspace():
        return value
    if value is None or type(value) is str:
        raise RowError("empty_content", field=field, index=index)
    raise RowError("wrong_type", field=field, index=index, expected=_TEXT, actual=kind_of(value))


def _optional_text(value: object, field: str, index: int | None = None) -> str:
    """Text that may be missing, null or empty: returned as ""."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    raise RowError("wrong_type", field=field, index=index, expected=_TEXT, actual=kind_of(value))


def _alpaca(row: dict) -> list[Message]:
    # The most common format, on the hot path: no work for absent options.
    try:
        instruction, output = row["instruction"], row["output"]
    except KeyError as error:
        raise RowError("missing_field", field=error.args[0], format="alpaca") from None
    extra = row.get("input")
    if extra is not None and extra != "":
        extra = _optional_text(extra, "input")
        if not extra.isspace():
            instruction = _optional_text(instruction, "instruction")
            instruction = f"{instruction}\n\n{extra}" if instruction else extra
    turns: list[Message] = [
        {"role": "user", "content": _text(instruction, "instruction")},
        {"role": "assistant", "content": _text(output, "output")},
    ]
    if "system" in row or "history" in row:
        return _alpaca_context(row) + turns
    return turns


def _alpaca_context(row: dict) -> list[Message]:
    """The optional system prompt and earlier turns that precede the last one."""
    messages: list[Message] = []
    system = _optional_text(row.get("system"), "system")
    if system and not system.isspace():
        messages.append({"role": "system", "content": system})
    history = row.get("history")
    if history:
        messages.extend(_alpaca_history(history))
    return messages


def _alpaca_history(history: object) -> list[Message]:
    pairs_expected = "a list of [question, answer] pairs"
    if type(history) is not list:
        raise RowError("wrong_type", field="history", expected=pairs_expected, actual=kind_of(history))
    messages: list[Message] = []
    for pair in history:
        if type(pair) is not list or len(pair) != 2:
            held = f"a group of {len(pair)}" if type(pair) is list else kind_of(pair)
            actual = f"a list holding {held}"
            raise RowError("wrong_type", field="history", expected=pairs_expected, actual=actual)
        messages.append({"role": "user", "content": _text(pair[0], "history")})
        messages.append({"role": "assistant", "content": _text(pair[1], "history")})
    return messages


def _messages(row: dict) -> list[Message]:
    messages = [
        _chat_message(item, index) for index, item in enumerate(_message_list(row["messages"], "messages"), 1)
    ]
    _check_turns(messages)
    return messages


def _message_list(value: object, field: str) -> list:
    if type(value) is not list:
        raise RowError(
            "wrong_type", field=field, expected="a list [ ... ] of messages", actual=kind_of(value)
        )
    if not value:
        raise RowError("empty_content", field=field)
    return value


def _chat_message(item: object, index: int) -> Message:
    if type(item) is not dict:
        expected = 'an object like {"role": "user", "content": "..."}'
        raise RowError("wrong_type", field="message", index=index, expected=expected, actual=kind_of(item))
    if "role" not in item:
        raise RowError("missing_field", field="role", index=index, format="messages")
    role = item["role"]
    if type(role) is not str:  # checked first: a list or an object can't even be looked up in a set
        raise RowError("wrong_type", field="role", index=index, expected=_TEXT, actual=kind_of(role))
    if role not in _ROLE_SET:
        raise RowError("unknown_role", role=role, index=index, allowed=_CHAT_ROLES_TEXT)
    tool_calls = item.get("tool_calls")
    may_be_empty = role == "tool" or (role == "assistant" and bool(tool_calls))
    if "content" not in item and not may_be_empty:
        raise RowError("missing_field", field="content", index=index, format="messages")
    content = item.get("content")
    if type(content) is list:
        content = _join_parts(content, index)
    content = _optional_text(content, "content", index) if may_be_empty else _text(content, "content", index)
    message: Message = {"role": role, "content": content}
    for key, expected_type, expected in (
        ("name", str, _TEXT),
        ("tool_calls", list, "a list [ ... ]"),
        ("tool_call_id", str, _TEXT),
    ):
        value = item.get(key)
        if value is None:
            continue
        if type(value) is not expected_type:
            raise RowError("wrong_type", field=key, index=index, expected=expected, actual=kind_of(value))
        message[key] = value  # type: ignore[literal-required]
    return message


def _join_parts(parts: list, index: int) -> str:
    """OpenAI content parts: only text parts can be trained on."""
    texts = []
    for part in parts:
        if type(part) is str:
            texts.append(part)
        elif type(part) is dict and part.get("type") == "text" and type(part.get("text")) is str:
            texts.append(part["text"])
        else:
            expected = 'text, or a list of {"type": "text", "text": "..."} parts'
            actual = (
                f"a list holding a {part.get('type')!r} part"
                if type(part) is dict
                else "a list holding " + kind_of(part)
            )
            raise RowError("wrong_type", field="content", index=index, expected=expected, actual=actual)
    return "\n".join(texts)


def _sharegpt(row: dict) -> list[Message]:
    messages: list[Message] = []
    system = _optional_text(row.get("system"), "system")
    if system and not system.isspace():
        messages.append({"role": "system", "content": system})
    offset = len(messages)
    for index, item in enumerate(_message_list(row["conversations"], "conversations"), 1):
        if type(item) is not dict:
            expected = 'an object like {"from": "human", "value": "..."}'
            raise RowError(
                "wrong_type", field="conversations", index=index, expected=expected, actual=kind_of(item)
            )
        speaker = item.get("from", item.get("role"))
        if speaker is None:
            raise RowError("missing_field", field="from", index=index, format="sharegpt")
        role = SHAREGPT_ROLES.get(speaker) if type(speaker) is str else None
        if role is None:
            raise RowError("unknown_role", role=str(speaker), index=index, allowed=_SHAREGPT_ROLES_TEXT)
        if "value" not in item and "content" not in item:
            raise RowError("missing_field", field="value", index=index, format="sharegpt")
        value = item.get("value", item.get("content"))
        messages.append({"role": role, "content": _text(value, "value", index)})  # type: ignore[typeddict-item]
    _check_turns(messages, offset)
    return messages


def _prompt_completion(row: dict) -> list[Message]:
    for field in ("prompt", "completion"):
        if field not in row:
            raise RowError("missing_field", field=field, format="prompt_completion")
    prompt, completion = row["prompt"], row["completion"]
    if type(prompt) is list or type(completion) is list:
        items = _as_chat(prompt, "prompt", "user") + _as_chat(completion, "completion", "assistant")
        messages = [_chat_message(item, index) for index, item in enumerate(items, 1)]
        _check_turns(messages)
        return messages
    return [
        {"role": "user", "content": _text(prompt, "prompt")},
        {"role": "assistant", "content": _text(completion, "completion")},
    ]


def _as_chat(value: object, field: str, role: str) -> list:
    if type(value) is list:
        return _message_list(value, field)
    return [{"role": role, "content": _text(value, field)}]


def _check_turns(messages: list[Message], offset: int = 0) -> None:
    """System only first; the user speaks before the assistant; an answer exists.

    ``offset`` is how many messages were added before the user's own list (a
    top-level system prompt), so error numbers match what the user wrote.
    """
    first_speaker = None
    has_answer = False
    for position, message in enumerate(messages):
        role = message["role"]
        if role == "system":
            if position:
                raise RowError("system_not_first", index=position + 1 - offset)
            continue
        if first_speaker is None:
            first_speaker = role
            if role == "assistant":
                raise RowError("assistant_first")
        if role == "assistant":
            has_answer = True
    if not has_answer:
        raise RowError("no_assistant_turn")


NORMALIZERS: dict[str, Callable[[dict], list[Message]]] = {
    "alpaca": _alpaca,
    "messages": _messages,
    "sharegpt": _sharegpt,
    "prompt_completion": _prompt_completion,
}

"""Every problem a validation can report: names, titles and the words users read.

One source of truth. Categories are the stable names the rest of the app stores
and counts (``invalid_json``, ``missing_field``...). A category can be reached
through several *problems*, each with its own message template, so a user is
told what exactly is wrong and what to do, in words that need no programming:
"Line 12 is not valid JSON: it seems to end early (...)".

Templates use ``str.format`` fields. ``{where}`` is filled by :func:`describe`
("Line 12", or "Message 3 on line 12" when the problem is in one message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Category:
    name: str
    title: str
    level: Literal["line", "file"]


def _categories(*items: tuple[str, str, Literal["line", "file"]]) -> dict[str, Category]:
    return {name: Category(name, title, level) for name, title, level in items}


# Order matters: reports list categories in this order.
CATEGORIES: dict[str, Category] = _categories(
    ("encoding", "Unreadable characters", "line"),
    ("line_too_long", "Line too long", "line"),
    ("invalid_json", "Not valid JSON", "line"),
    ("not_object", "Not an object", "line"),
    ("unknown_format", "Unknown format", "line"),
    ("mixed_formats", "Different format from the rest of the file", "line"),
    ("missing_field", "Missing field", "line"),
    ("wrong_type", "Wrong kind of value", "line"),
    ("empty_content", "Empty text", "line"),
    ("unknown_role", "Unknown role", "line"),
    ("no_assistant_turn", "No answer from the assistant", "line"),
    ("bad_turn_order", "Turns in the wrong order", "line"),
    ("identical_pair", "Both answers the same", "line"),
    ("empty_file", "Empty file", "file"),
    ("no_valid_rows", "No usable rows", "file"),
    ("corrupt_archive", "Damaged compressed file", "file"),
    ("too_large_unpacked", "Too much data in one file", "file"),
    ("too_many_rows", "Too many rows in one file", "file"),
    ("unsupported_archive", "An archive Lathe does not unpack", "file"),
)

_ONE_OBJECT = 'Each line must be one complete JSON object, like {{"instruction": "...", "output": "..."}}.'

# problem -> (category, message template)
PROBLEMS: dict[str, tuple[str, str]] = {
    # --- reading the file
    "encoding": (
        "encoding",
        "{where} contains characters that are not valid {encoding} text: the file was "
        "probably saved in another encoding, or is damaged here. Save the file as "
        "UTF-8 (most editors offer this under “Save as”) and upload it again.",
    ),
    "line_too_long": (
        "line_too_long",
        "{where} is longer than the limit of {limit}. This usually means the file is "
        "not one row per line, or a row holds a very large value. Put each row on "
        "its own line and keep rows under the limit (your administrator can raise "
        "it with LATHE_MAX_LINE_BYTES).",
    ),
    "corrupt_archive": (
        "corrupt_archive",
        "The compressed (.gz) file is damaged or cut short, so only the first {rows} "
        "rows could be read. Compress the file again and upload it again.",
    ),
    "too_large_unpacked": (
        "too_large_unpacked",
        "This file {what} more than {limit} of data, the most Lathe reads from one "
        "upload, so only its first {rows} rows were checked and the rest was not read. "
        "Split it into smaller files and upload each one, or ask your administrator "
        "to raise LATHE_MAX_DECOMPRESSED_BYTES. Your original file is kept as it is.",
    ),
    "too_many_rows": (
        "too_many_rows",
        "This file has more than {limit} {what}, the most Lathe reads from one upload, "
        "so only the first {limit} {what} were checked and the rest was not read. Split "
        "it into smaller files and upload each one, or ask your administrator to "
        "raise LATHE_MAX_ROWS. Your original file is kept as it is.",
    ),
    "unsupported_archive": (
        "unsupported_archive",
        "This file is a {kind} archive, which Lathe does not unpack. Upload the .jsonl "
        "or .json file itself, or compress it with gzip (.gz) instead.",
    ),
    "empty_file": (
        "empty_file",
        "The file is empty: it has no rows at all. Check that you picked the right "
        "file, and upload it again.",
    ),
    "no_valid_rows": (
        "no_valid_rows",
        "None of the {rows} rows in this file can be used for training. Look at the "
        "problems listed, fix them in the file, and upload it again.",
    ),
    # --- JSON syntax
    "json_ends_early": (
        "invalid_json",
        '{where} is not valid JSON: it seems to end early (a closing }} or " is missing). ' + _ONE_OBJECT,
    ),
    "json_single_quotes": (
        "invalid_json",
        "{where} is not valid JSON: it uses single quotes (') around names or text, "
        'but JSON needs double quotes ("). ' + _ONE_OBJECT,
    ),
    "json_trailing_comma": (
        "invalid_json",
        "{where} is not valid JSON: there is a comma just before a closing }} or ]. "
        "Remove that comma. " + _ONE_OBJECT,
    ),
    "json_extra_text": (
        "invalid_json",
        "{where} is not valid JSON: there is more text after the end of the object "
        "(perhaps two rows on one line). Put each row on its own line.",
    ),
    "json_pretty_printed": (
        "invalid_json",
        "{where} holds only part of a JSON object: each row seems to be spread over "
        "several lines. Save the file with one row per line (JSON Lines), or as one "
        "list [ ... ] of rows in a .json file.",
    ),
    "json_control_character": (
        "invalid_json",
        "{where} is not valid JSON: some text holds a raw tab or other invisible "
        "control character. Inside quotes, write a tab as \\t and a line break as "
        "\\n. " + _ONE_OBJECT,
    ),
    "json_invalid": (
        "invalid_json",
        "{where} is not valid JSON (the problem is near character {column}: {detail}). " + _ONE_OBJECT,
    ),
    "array_missing_comma": (
        "invalid_json",
        "{where}: a comma is missing between this row and the one before it. In a "
        "list [ ... ] of rows, rows must be separated by commas.",
    ),
    "array_truncated": (
        "invalid_json",
        "{where}: the file ends in the middle of this row, so it is cut off. The "
        "file may not have been saved or uploaded completely; upload it again.",
    ),
    "array_broken": (
        "invalid_json",
        "{where}: the list [ ... ] of rows is broken here (a comma, quote or bracket "
        "is missing or extra), so the rest of the file could not be read. Fix this "
        "row and upload the file again.",
    ),
    "array_extra_text": (
        "invalid_json",
        "{where}: there is more text after the closing ] of the list of rows. A "
        ".json file must hold exactly one list; remove the extra text.",
    ),
    # --- row shape
    "not_object": (
        "not_object",
        "{where} is valid JSON but it is {kind}, not an object in curly braces {{ }}. " + _ONE_OBJECT,
    ),
    "unknown_format": (
        "unknown_format",
        "{where} does not look like any format Lathe knows: its fields are {fields}. "
        'Name the fields like one of the supported formats ("instruction" and '
        '"output", "messages", "conversations", or "prompt" and "completion"), or '
        "map your field names to these on the upload page.",
    ),
    "mixed_formats": (
        "mixed_formats",
        "{where} is in the {row_format} format, but this file is mainly in the "
        "{majority} format ({majority_count} rows). A file must use one format, so "
        "this row is left out. Convert it to the {majority} format, or upload it "
        "in a separate file.",
    ),
    "missing_field": (
        "missing_field",
        '{where} has no "{field}" field, which every {format} row needs. Add it, or, '
        "if your file uses another name for it, map that name to "
        '"{field}" on the upload page.',
    ),
    "wrong_type": (
        "wrong_type",
        '{where}: "{field}" should be {expected}, but it is {actual}. Change it to {expected}.',
    ),
    "empty_content": (
        "empty_content",
        '{where}: "{field}" is empty. A training example needs text there: fill it in, or remove this row.',
    ),
    "unknown_role": (
        "unknown_role",
        '{where} has the role "{role}", which Lathe does not know. Use one of: {allowed}.',
    ),
    "no_assistant_turn": (
        "no_assistant_turn",
        "{where} has no answer from the assistant, so there is nothing for the model "
        "to learn from it. Add the answer, or remove this row.",
    ),
    "system_not_first": (
        "bad_turn_order",
        "{where} is a system message, but a system message may only come first. "
        "Move it to the start of the conversation, or remove it.",
    ),
    # --- preference rows (datasets_app/core/preference.py)
    "identical_pair": (
        "identical_pair",
        "{where}: the preferred answer and the other answer are the same, so the model cannot learn "
        "which is better from it. Write a different, worse answer as the rejected one, or remove this row.",
    ),
    "prompt_ends_with_assistant": (
        "bad_turn_order",
        '{where}: "{field}" ends with an answer from the assistant, so the two answers after it would '
        "not be answers to the user. End the prompt with the user's message.",
    ),
    "no_user_turn": (
        "bad_turn_order",
        '{where}: "{field}" has no message from the user, so there is no question to answer. '
        "Add the user's message.",
    ),
    "answer_not_assistant": (
        "bad_turn_order",
        '{where} is in "{field}" with the role "{role}": an answer may hold only the assistant\'s '
        'messages. Move it into the prompt, or change its role to "assistant".',
    ),
    "no_shared_prompt": (
        "missing_field",
        '{where} has "chosen" and "rejected" conversations that do not start with the same question, '
        'and no "prompt". Add a "prompt" field, or start both conversations with the same user message.',
    ),
    "assistant_first": (
        "bad_turn_order",
        "{where}: the conversation starts with the assistant. After an optional "
        "system message, the user must speak first. Add the user's message before "
        "it, or remove this row.",
    ),
}


PARAM_CHARS = 200


def describe(problem: str, line: int | None, params: dict | None = None) -> tuple[str, str]:
    """Return ``(category, message)`` for one problem found on ``line``.

    ``params`` may hold ``index`` (1-based message number) to point inside a
    conversation, plus whatever fields the template uses.
    """
    category, template = PROBLEMS[problem]
    # Values quoted from a row (a role, field names) are cut short: a row may be megabytes.
    fields = {
        name: value[:PARAM_CHARS] + "…" if isinstance(value, str) and len(value) > PARAM_CHARS else value
        for name, value in (params or {}).items()
    }
    index = fields.get("index")
    if index is not None:
        fields["where"] = f"Message {index} on line {line}"
    else:
        fields["where"] = f"Line {line}"
    return category, template.format(**fields)

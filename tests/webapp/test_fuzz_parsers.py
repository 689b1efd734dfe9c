"""Property-based fuzzing of what parses untrusted input: the line validator and the OpenAI request parsers.

Each parser must never raise on arbitrary input: the validator files every row under a
known category, and the /v1 parsers answer a parsed value or an OpenAI-shaped 4xx.
Examples are kept few (200 at most) so the suite stays fast.

The crashes fuzzing found are pinned by the plain tests at the end.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from datasets_app.core.categories import CATEGORIES
from datasets_app.core.validate import ValidationOptions, validate_file
from lathe_common.web.openai_wire import OpenAIRequestError, page_limit, parse_public_id
from models_app.gateway.completions import parse_body
from training_app.openai_request import fine_tuning_request_parse, json_body

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis folder in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# --- strategies ----------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
# The names the formats and the /v1 bodies look for, so fuzzing reaches past the first check.
NAMES = st.sampled_from(
    [
        "messages", "conversations", "instruction", "input", "output", "prompt", "completion", "system",
        "role", "content", "from", "value", "user", "assistant", "gpt", "human", "text", "type",
        "model", "training_file", "validation_file", "hyperparameters", "method", "supervised", "suffix",
        "seed", "metadata", "auto_deploy", "n_epochs", "batch_size", "learning_rate_multiplier",
    ]
)  # fmt: skip
keys = NAMES | st.text(max_size=10)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
json_objects = st.dictionaries(keys, json_values, max_size=6)
# Rows shaped like each format, with any value where a text or a role goes.
anything = json_values | st.sampled_from(["user", "assistant", "system", "tool", "human", "gpt", ""])
format_rows = (
    st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.dictionaries(st.sampled_from(["role", "content", "name", "tool_calls"]), anything)
            )
        }
    )
    | st.fixed_dictionaries(
        {
            "conversations": st.lists(
                st.dictionaries(st.sampled_from(["from", "value", "role", "content"]), anything)
            )
        }
    )
    | st.dictionaries(
        st.sampled_from(["instruction", "input", "output", "system", "history"]), anything, min_size=1
    )
    | st.dictionaries(st.sampled_from(["prompt", "completion"]), anything, min_size=1)
)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


DEEP = [_deep(5000), b'{"a":' * 3000 + b"1" + b"}" * 3000]
shallow_odd_lines = st.sampled_from(
    [
        b"\xff\xfe\x00{",
        b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        b"1" * 5000,
        b'{"instruction": "' + b"\\u" * 50 + b'"}',
        b"\x00" * 10,
        b"[" + b"9" * 5000 + b"]",
        b'{"n": 1e999, "m": -1e999}',
    ]
)
odd_lines = shallow_odd_lines | st.sampled_from(DEEP)
# json.dumps, not orjson: integers past 64 bits are valid JSON that clients may send.
json_bytes = st.builds(lambda value: json.dumps(value).encode(), json_values)


# --- (a) the line validator --------------------------------------------------


def _validate(content: bytes, **options):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.jsonl"
        path.write_bytes(content)
        errors = Path(folder) / "errors.jsonl"
        report = validate_file(path, errors_out=errors, options=ValidationOptions(**options))
        listed = [orjson.loads(line) for line in errors.read_bytes().splitlines()]
    return report, listed


def _check_report(report, listed) -> None:
    assert set(report.counts) <= set(CATEGORIES)
    assert {error.category for error in report.file_errors} <= set(CATEGORIES)
    assert {error["category"] for error in listed} <= set(CATEGORIES)
    assert 0 <= report.valid_rows <= report.rows
    # One problem per bad row: the counts of line problems add up to the bad rows.
    assert sum(report.counts.values()) == report.rows - report.valid_rows == len(listed)


@FUZZ
@given(lines=st.lists(st.binary(max_size=300) | odd_lines, min_size=1, max_size=8))
def test_the_validator_files_arbitrary_bytes_under_known_categories(lines):
    report, listed = _validate(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    _check_report(report, listed)


@FUZZ
@given(rows=st.lists(json_values | json_objects | format_rows, min_size=1, max_size=8))
def test_the_validator_files_arbitrary_json_under_known_categories(rows):
    # A row first that is not "[": a file starting with "[" is read as one JSON array (tested below).
    content = b'{"x": 1}\n' + b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    report, listed = _validate(content, max_line_bytes=4096)
    _check_report(report, listed)


@FUZZ
@given(rows=st.lists(json_values | json_objects, max_size=8), tail=st.binary(max_size=20))
def test_the_validator_reads_arbitrary_json_arrays(rows, tail):
    report, listed = _validate(json.dumps(rows).encode() + tail, max_rows=5)
    _check_report(report, listed)
    assert report.rows <= 5


@FUZZ
@given(text=st.text(max_size=200))
def test_the_validator_never_fails_on_arbitrary_text_in_any_encoding(text):
    for encoding in ("utf-8", "utf-16", "gb18030"):
        try:
            content = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        _check_report(*_validate(content))


# --- (b) the OpenAI request parsers -------------------------------------------


def _is_openai_error(response: HttpResponse, statuses=(400,)) -> bool:
    body = json.loads(response.content)
    error = body.get("error") or {}
    return response.status_code in statuses and isinstance(error.get("message"), str) and error["message"]


@FUZZ
@given(raw=st.binary(max_size=200) | json_bytes | odd_lines)
def test_the_gateway_body_parser_answers_a_dict_or_an_openai_400(raw):
    parsed = parse_body(raw)
    assert isinstance(parsed, dict) or _is_openai_error(parsed)


@FUZZ
@given(raw=st.binary(max_size=200) | json_bytes | shallow_odd_lines)
def test_the_fine_tuning_body_reader_answers_a_dict_or_an_openai_error(raw):
    request = RequestFactory().post("/v1/fine_tuning/jobs", data=raw, content_type="application/json")
    try:
        assert isinstance(json_body(request), dict)
    except OpenAIRequestError as error:
        assert error.status == 400 and error.message


@FUZZ
@given(value=st.text(max_size=30))
def test_public_ids_parse_or_answer_404(value):
    try:
        assert parse_public_id("file", value, "file") >= 0
    except OpenAIRequestError as error:
        assert error.status == 404


@FUZZ
@given(limit=st.text(max_size=25))
def test_page_limits_clamp_or_answer_400(limit):
    assume("\x00" not in limit)
    request = RequestFactory().get("/v1/files", {"limit": limit})
    try:
        assert 1 <= page_limit(request) <= 100
    except OpenAIRequestError as error:
        assert error.status == 400 and error.param == "limit"


@pytest.fixture
def fine_tuning_inputs(alice):
    """A training file and a base model of alice's, so fuzzed bodies reach the hyperparameters."""
    from datasets_app.openai_files import file_public_id
    from models_app.models import BaseModel
    from tests.datasets_app.factories import dataset_with_version

    _, dataset_file, _ = dataset_with_version(alice)
    BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen")
    return {"training_file": file_public_id(dataset_file.pk), "model": "Qwen/Qwen2.5-0.5B-Instruct"}


hyperparameters = st.dictionaries(
    st.sampled_from(["n_epochs", "batch_size", "learning_rate_multiplier"]) | st.text(max_size=5),
    json_values | st.just("auto"),
    max_size=3,
)
fine_tuning_bodies = st.fixed_dictionaries(
    {},
    optional={
        "hyperparameters": hyperparameters | json_values,
        "method": st.fixed_dictionaries(
            {"type": st.just("supervised") | json_values},
            optional={"supervised": st.fixed_dictionaries({}, optional={"hyperparameters": hyperparameters})
                      | json_values},
        )
        | json_values,
        "seed": st.integers() | json_values,
        "suffix": json_values,
        "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=20) | json_values,
        "auto_deploy": st.booleans() | json_values,
        "validation_file": json_values | st.just("file-1"),
        "training_file": json_values,
        "model": json_values,
    },
)  # fmt: skip


@pytest.mark.django_db
@FUZZ
@given(body=fine_tuning_bodies, keep=st.sampled_from(["both", "file", "model", "none"]))
def test_the_fine_tuning_request_parses_or_answers_an_openai_error(alice, fine_tuning_inputs, body, keep):
    base = {name: fine_tuning_inputs[name] for name in ("training_file", "model") if keep in ("both", name)}
    body = {**body, **base}
    try:
        parsed = fine_tuning_request_parse(alice, body)
    except OpenAIRequestError as error:
        assert error.status in (400, 404) and error.message
    else:
        assert parsed["recipe"] is not None and parsed["base_model"].hf_id == fine_tuning_inputs["model"]


@pytest.fixture
def alice_key(alice) -> str:
    from accounts.services import api_token_create

    return api_token_create(user=alice, name="fuzz")[1]


@pytest.mark.django_db
@FUZZ
@given(raw=st.binary(max_size=100) | json_bytes | shallow_odd_lines)
def test_the_fine_tuning_endpoint_answers_openai_errors_to_bodies_it_cannot_use(alice_key, raw):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    response = client.post(reverse("openai_fine_tuning_jobs"), data=raw, content_type="application/json")
    assert _is_openai_error(response, statuses=(400, 404))


# --- crashes fuzzing found, pinned ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"method": {"type": "supervised", "supervised": [1]}},
        {"method": {"type": "supervised", "supervised": {"hyperparameters": "fast"}}},
        {"method": {"type": "supervised"}, "hyperparameters": [1]},
        {"hyperparameters": {"learning_rate_multiplier": 10**400}},
    ],
)
def test_odd_hyperparameter_shapes_answer_400(alice, fine_tuning_inputs, body):
    with pytest.raises(OpenAIRequestError):
        fine_tuning_request_parse(alice, {**body, **fine_tuning_inputs})


@pytest.mark.parametrize("raw", DEEP)
def test_a_deeply_nested_fine_tuning_body_answers_400(raw):
    request = RequestFactory().post("/v1/fine_tuning/jobs", data=raw, content_type="application/json")
    with pytest.raises(OpenAIRequestError):
        json_body(request)


def test_a_page_limit_with_a_superscript_digit_answers_400():
    with pytest.raises(OpenAIRequestError):
        page_limit(RequestFactory().get("/v1/files", {"limit": "¹"}))


@pytest.mark.django_db
@settings(FUZZ, max_examples=50)
@given(
    purpose=st.text(max_size=20) | st.just("fine-tune"),
    content=st.binary(max_size=200) | json_bytes | shallow_odd_lines,
    after=st.text(max_size=12),
)
def test_the_files_endpoint_answers_a_file_or_an_openai_error(alice_key, purpose, content, after):
    assume("\x00" not in purpose + after)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    upload = SimpleUploadedFile("data.jsonl", content)
    response = client.post(reverse("openai_files"), {"purpose": purpose, "file": upload})
    if response.status_code == 200:
        assert purpose == "fine-tune" and response.json()["object"] == "file"
    else:  # 429: a quota on queued checks or stored bytes (accounts/quotas.py)
        assert _is_openai_error(response, statuses=(400, 429))
    listed = client.get(reverse("openai_files"), {"after": after})
    assert listed.status_code == 200 or _is_openai_error(listed, statuses=(404,))

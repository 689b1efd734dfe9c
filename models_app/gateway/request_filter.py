"""What of a client's completions request reaches vLLM: known fields, bounded sizes, text only.

vLLM accepts dozens of fields beyond OpenAI's (it ignores none it knows): some change the server's
state or reach outside the request (`kv_transfer_params`, `request_id`, `priority`, `cache_salt`,
`prompt_embeds`, a Jinja `chat_template`, `mm_processor_kwargs`, `media_io_kwargs`, grammars in
`structured_outputs`, `vllm_xargs`). The gateway forwards only the fields below: OpenAI's chat and
completions parameters, plus three harmless sampling knobs people use with open models (`top_k`,
`min_p`, `repetition_penalty`) and vLLM's `min_tokens`, bounded like `max_tokens`. Any other field is
dropped, not refused, so that clients written for OpenAI or another vendor, which send extras of their
own, still work. `best_of` is dropped: vLLM 0.32 no longer reads it.

`n`, `max_tokens`/`max_completion_tokens` and `min_tokens` above the site's limits answer 400 naming
the field and the limit, as OpenAI answers a value out of range (clamping would return less than was
asked for, silently). A request that sets no `max_tokens` is bounded by the server's context length
(LATHE_VLLM_MAX_MODEL_LEN). Media parts in messages (images, audio, video, files) answer 400: Lathe
serves no model that reads them, and a URL in one would have vLLM fetch it from inside the network.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from models_app.gateway.errors import field_refused

FORWARDED_FIELDS = frozenset(
    {
        # Both endpoints.
        "model",
        "max_tokens",
        "temperature",
        "top_p",
        "n",
        "stop",
        "stream",
        "stream_options",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "seed",
        "user",
        # /v1/chat/completions
        "messages",
        "max_completion_tokens",
        "top_logprobs",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        # /v1/completions
        "prompt",
        "echo",
        "suffix",
        # vLLM's sampling extras that change nothing but the sampling.
        "top_k",
        "min_p",
        "repetition_penalty",
        # vLLM's floor on the answer's length (bounded like max_tokens): answers of equal length, for
        # comparing two models' speed through the gateway (bench/deploy_bench.py).
        "min_tokens",
    }
)
# Each counted field: its setting, and the smallest value allowed.
CAPPED_FIELDS = {
    "n": ("LATHE_GATEWAY_MAX_N", 1),
    "max_tokens": ("LATHE_GATEWAY_MAX_TOKENS", 1),
    "max_completion_tokens": ("LATHE_GATEWAY_MAX_TOKENS", 1),
    "min_tokens": ("LATHE_GATEWAY_MAX_TOKENS", 0),
}
STREAM_OPTIONS = frozenset({"include_usage", "continuous_usage_stats"})
# OpenAI's response formats; vLLM's own (e.g. "structural_tag") compile grammars the client writes.
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
TEXT_PART_TYPES = frozenset({"text", "refusal"})
# vLLM guesses a part's kind from these keys when it has no "type".
MEDIA_KEYS = frozenset(
    {"image_url", "image_embeds", "image_pil", "input_audio", "audio_url", "video_url", "file", "input_image"}
)
TEXT_ONLY = (
    "This model takes text only: remove the image, audio, video or file parts from 'messages' and "
    "send the text as a string or as parts of type 'text'."
)


def upstream_body(body: dict) -> dict | HttpResponse:
    """The body to send to vLLM, or the 400 that says what to change."""
    for field, (setting_name, smallest) in CAPPED_FIELDS.items():
        refused = _refuse_count(body, field, setting_name, smallest)
        if refused is not None:
            return refused
    refused = _refuse_response_format(body.get("response_format")) or _refuse_media(body.get("messages"))
    if refused is not None:
        return refused
    forwarded = {field: value for field, value in body.items() if field in FORWARDED_FIELDS}
    if isinstance(forwarded.get("stream_options"), dict):
        options = forwarded["stream_options"]
        forwarded["stream_options"] = {key: value for key, value in options.items() if key in STREAM_OPTIONS}
    return forwarded


def _refuse_count(body: dict, field: str, setting_name: str, smallest: int) -> HttpResponse | None:
    value = body.get(field)
    if value is None:
        return None
    limit = getattr(settings, setting_name)
    # JSON has one kind of number: 2.0 is a whole number too (vLLM reads it as 2).
    whole = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    if not whole or not smallest <= value <= limit:
        return field_refused(
            field,
            f"'{field}' must be a whole number from {smallest} to {limit} on this site (the limit is "
            f"{setting_name}, set by its administrator); it was {_shown(value)}.",
        )
    return None


def _refuse_response_format(response_format) -> HttpResponse | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in RESPONSE_FORMATS:
        return field_refused(
            "response_format",
            "'response_format' must be an object whose 'type' is 'text', 'json_object' or 'json_schema'.",
        )
    return None


def _refuse_media(messages) -> HttpResponse | None:
    if not isinstance(messages, list):
        return None  # vLLM answers a malformed body itself
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(message, dict) and MEDIA_KEYS & message.keys():
            return field_refused("messages", TEXT_ONLY, "media_not_supported")
        if isinstance(content, list) and not all(_is_text_part(part) for part in content):
            return field_refused("messages", TEXT_ONLY, "media_not_supported")
    return None


def _is_text_part(part) -> bool:
    if isinstance(part, str):
        return True
    return isinstance(part, dict) and part.get("type") in TEXT_PART_TYPES and not MEDIA_KEYS & part.keys()


def _shown(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."

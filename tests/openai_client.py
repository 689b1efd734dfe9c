"""The real `openai` client pointed at the live site, and chat data for it."""

from __future__ import annotations

import json

from openai import OpenAI

from accounts.services import api_token_create


def openai_client(live_site: str, user, *, key: str | None = None) -> OpenAI:
    """A client as a script would make one, with a fresh API key of `user` unless one is given."""
    if key is None:
        _, key = api_token_create(user=user, name="openai script")
    return OpenAI(base_url=f"{live_site}/v1", api_key=key, max_retries=0, timeout=60)


def chat_jsonl(count: int, *, start: int = 0, bad_lines: tuple[str, ...] = ()) -> bytes:
    """OpenAI's chat fine-tuning format, one distinct conversation a line, then any bad lines."""
    topics = "tides volcanoes glaciers comets deserts rivers forests reefs storms caves".split()
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You answer in one short sentence."},
                    {"role": "user", "content": f"Question {i}: what shapes {topics[i % 10]} number {i}?"},
                    {
                        "role": "assistant",
                        "content": f"Answer {i}: mostly time, water and {topics[-i % 10]}.",
                    },
                ]
            }
        )
        for i in range(start, start + count)
    ]
    return ("\n".join([*lines, *bad_lines]) + "\n").encode()

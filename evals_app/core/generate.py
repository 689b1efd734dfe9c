"""Answers from an OpenAI-compatible chat server (vLLM), many at a time. Knows nothing of Django or Celery.

The requests run on an asyncio loop in a thread of its own, while the caller's thread calls `progress`
and `should_stop`: those callbacks may use Django's ORM, which refuses to run inside an event loop and
keeps one database connection per thread. It also means a caller that has an event loop running
(a test, a notebook) can call these functions as plain blocking ones.

`chat_completions` is the one request machinery (order, concurrency, retries, errors, cancelling);
`generate_answers` and the judge (`judge.py`) only build the request bodies. Lathe's own vLLM servers are
called directly; an address a user gave (a judge) only through lathe_common/outbound.py, given an `outbound`
policy: its host checked and pinned, no redirects, one time limit for each whole request.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from lathe_common.outbound import (
    OutboundClient,
    OutboundError,
    OutboundPolicy,
    OutboundRefused,
    OutboundTimeout,
)

Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]

CANCELLED = "cancelled"
NOT_SENT_SERVER_GONE = "not sent: the model server had stopped answering"
# A transient failure (no connection, a 5xx, 429) is tried again after each of these pauses.
RETRY_DELAYS_SECONDS = (0.5, 2.0)
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# A CPU server at full concurrency can take minutes over one long answer; only a dead one is cut short.
REQUEST_TIMEOUT_SECONDS = 900.0
CONNECT_TIMEOUT_SECONDS = 10.0
# After this many requests in a row could not reach the server (their retries spent), it is taken to be
# gone and the rest are not sent: otherwise 1,000 rows would each wait out their retries.
SERVER_GONE_AFTER = 3
# How often the caller's thread asks should_stop(), which may be a database query.
STOP_POLL_SECONDS = 0.5


class GenerationError(RuntimeError):
    """The server could not be reached for any request: nothing was answered."""


@dataclass
class Generation:
    """One request's outcome. On failure `text` is "" and `error` says why, in plain words."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    error: str | None
    seconds: float


@dataclass
class GenerationSettings:
    max_tokens: int = 256
    temperature: float = 0.0  # greedy: the same model and prompts give the same answers
    top_p: float = 1.0
    seed: int | None = 0
    concurrency: int = 16

    def describe(self) -> str:
        """A short line for the results page, e.g. "greedy, up to 256 new tokens, 16 at a time"."""
        if self.temperature == 0:
            parts = ["greedy"]
        else:
            parts = [f"temperature {self.temperature:g}"]
            if self.top_p < 1:
                parts.append(f"top-p {self.top_p:g}")
            if self.seed is not None:
                parts.append(f"seed {self.seed}")
        parts.append(f"up to {self.max_tokens} new token{'s' if self.max_tokens != 1 else ''}")
        parts.append(f"{self.concurrency} at a time")
        return ", ".join(parts)

    def request_fields(self) -> dict:
        """The sampling fields of a chat completions body."""
        fields: dict = {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p}
        if self.seed is not None:
            fields["seed"] = self.seed
        return fields


def generate_answers(
    *,
    base_url: str,
    api_key: str,
    model: str,
    conversations: list[list[dict]],
    settings: GenerationSettings,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> list[Generation]:
    """The model's answer to each conversation (OpenAI `messages` without the final assistant turn), in order.

    A failed request is recorded in its Generation; GenerationError only when the server answered none.
    """
    for position, messages in enumerate(conversations):
        if messages and messages[-1].get("role") == "assistant":
            raise ValueError(
                f"Conversation {position} ends with the assistant's turn: drop it, it is the reference."
            )
    fields = settings.request_fields()
    bodies = [{"model": model, "messages": messages, **fields} for messages in conversations]
    return chat_completions(
        base_url=base_url,
        api_key=api_key,
        bodies=bodies,
        concurrency=settings.concurrency,
        progress=progress,
        should_stop=should_stop,
    )


def chat_completions_url(base_url: str) -> str:
    """`{base_url}/v1/chat/completions`; a base URL pasted with its /v1 (as OpenAI's docs show) works too.

    Built from the base URL's parts: a query or fragment in it is dropped, never able to rewrite the path.
    """
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/v1/chat/completions", "", ""))


def chat_completions(
    *,
    base_url: str,
    api_key: str,
    bodies: list[dict],
    concurrency: int,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    outbound: OutboundPolicy | None = None,
) -> list[Generation]:
    """POST each body to the server's chat completions, `concurrency` at most in flight; results in order.

    `progress(done, total)` is called as requests finish (answered or failed); once `should_stop()` is
    true, requests not yet finished end with the error "cancelled" (those in flight are dropped, which
    makes vLLM abort them). `outbound`: the server is a user's address, called under that policy.
    """
    if not bodies:
        return []
    run = _Run(total=len(bodies))
    url = chat_completions_url(base_url)
    failure: list[BaseException] = []

    def send_everything() -> None:
        try:
            asyncio.run(
                _send_all(
                    url=url,
                    api_key=api_key,
                    bodies=bodies,
                    concurrency=concurrency,
                    run=run,
                    outbound=outbound,
                )
            )
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread below
            failure.append(error)

    sender = threading.Thread(target=send_everything, name="chat-completions", daemon=True)
    sender.start()
    try:
        _watch(run, sender, progress, should_stop)
    finally:
        # Also when a callback raised: cancel what is in flight before handing the error on.
        run.stop.set()
        sender.join()
    if failure:
        raise failure[0]
    results = [result or _failed(CANCELLED, started=time.perf_counter()) for result in run.results]
    if run.unreachable_error and not run.reached_server:
        raise GenerationError(run.unreachable_error)
    return results


@dataclass
class _Run:
    """What the sending thread and the caller's thread share (results are read only after the join)."""

    total: int

    def __post_init__(self) -> None:
        self.results: list[Generation | None] = [None] * self.total
        self.finished: queue.Queue[int] = queue.Queue()
        self.stop = threading.Event()
        self.reached_server = False  # any HTTP answer at all, even an error status
        self.unreachable_error: str | None = None  # the latest request's, when it found no server
        self.unreachable_in_a_row = 0

    @property
    def server_gone(self) -> bool:
        return self.unreachable_in_a_row >= SERVER_GONE_AFTER

    def finish(self, index: int, generation: Generation) -> None:
        self.results[index] = generation
        self.finished.put(index)


def _watch(
    run: _Run, sender: threading.Thread, progress: Progress | None, should_stop: ShouldStop | None
) -> None:
    """In the caller's thread: report each finished request, and pass on a wish to stop."""
    done = 0
    next_stop_check = 0.0
    while True:
        try:
            run.finished.get(timeout=0.1)
        except queue.Empty:
            if not sender.is_alive() and run.finished.empty():
                return
        else:
            done += 1
            if progress is not None:
                progress(done, run.total)
        if should_stop is not None and not run.stop.is_set() and time.monotonic() >= next_stop_check:
            next_stop_check = time.monotonic() + STOP_POLL_SECONDS
            if should_stop():
                run.stop.set()


def _client(*, api_key: str, concurrency: int, outbound: OutboundPolicy | None):
    headers = {"Authorization": f"Bearer {api_key}"}
    if outbound is not None:
        return OutboundClient(policy=outbound, headers=headers, max_connections=concurrency)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits)


async def _send_all(
    *,
    url: str,
    api_key: str,
    bodies: list[dict],
    concurrency: int,
    run: _Run,
    outbound: OutboundPolicy | None = None,
) -> None:
    slots = asyncio.Semaphore(max(1, concurrency))
    async with _client(api_key=api_key, concurrency=concurrency, outbound=outbound) as client:
        tasks = [
            asyncio.create_task(_send_one(client, url, index, body, slots, run))
            for index, body in enumerate(bodies)
        ]
        stopper = asyncio.create_task(_cancel_when_stopped(tasks, run))
        await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()


async def _cancel_when_stopped(tasks: list[asyncio.Task], run: _Run) -> None:
    # A threading.Event cannot be awaited; a short poll is cheap next to any generation.
    while not run.stop.is_set():
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()


async def _send_one(
    client: httpx.AsyncClient | OutboundClient,
    url: str,
    index: int,
    body: dict,
    slots: asyncio.Semaphore,
    run: _Run,
) -> None:
    started = time.perf_counter()
    try:
        async with slots:
            if run.stop.is_set():
                return  # left as None: filled in as "cancelled", and not counted as done
            if run.server_gone:
                run.finish(index, _failed(NOT_SENT_SERVER_GONE, started=started))
                return
            generation = await _post_with_retries(client, url, body, run)
    except asyncio.CancelledError:
        run.results[index] = _failed(CANCELLED, started=started)
        return
    run.finish(index, generation)


async def _post_with_retries(
    client: httpx.AsyncClient | OutboundClient, url: str, body: dict, run: _Run
) -> Generation:
    started = time.perf_counter()
    for delay in (*RETRY_DELAYS_SECONDS, None):
        try:
            response = await client.post(url, json=body)
        except OutboundRefused as refused:
            # Nothing was sent (the address is not one Lathe calls): the same for every request.
            problem, reached = refused.message, False
            break
        except (OutboundTimeout, httpx.ReadTimeout, httpx.WriteTimeout) as error:
            # It was reached and is working: asking again would only add to its queue.
            run.reached_server = True
            if isinstance(error, OutboundTimeout):
                return _failed(error.message, started)
            return _failed(
                f"The model server took longer than {REQUEST_TIMEOUT_SECONDS:.0f} s to answer.", started
            )
        except OutboundError as error:  # a redirect, an answer too large: asking again changes nothing
            run.reached_server = True
            return _failed(error.message, started)
        except httpx.TransportError as error:
            problem, reached = _unreachable_text(url, error), False
        else:
            run.reached_server, reached = True, True
            run.unreachable_in_a_row = 0
            if response.status_code == 200:
                return _answer(response, started)
            problem = _status_text(response)
            if response.status_code not in RETRIED_STATUSES:
                return _failed(problem, started)
        if delay is None or run.stop.is_set():
            break
        await asyncio.sleep(delay)
    if not reached:
        run.unreachable_error = problem
        run.unreachable_in_a_row += 1
    return _failed(problem, started)


def _answer(response: httpx.Response, started: float) -> Generation:
    try:
        payload = response.json()
        choice = payload["choices"][0]
        usage = payload.get("usage") or {}
        return Generation(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=choice.get("finish_reason"),
            error=None,
            seconds=time.perf_counter() - started,
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return _failed(f"The model server's reply was not a chat completion: {response.text[:200]}", started)


def _failed(error: str, started: float) -> Generation:
    return Generation(
        text="",
        prompt_tokens=0,
        completion_tokens=0,
        finish_reason=None,
        error=error,
        seconds=time.perf_counter() - started,
    )


def _unreachable_text(url: str, error: httpx.TransportError) -> str:
    server = url.removesuffix("/v1/chat/completions")
    reason = str(error) or type(error).__name__
    return f"Could not reach the model server at {server}: {reason}"


def _status_text(response: httpx.Response) -> str:
    """The server's own message (OpenAI and vLLM put it in error.message), with the status."""
    message = ""
    try:
        payload = response.json()
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
        elif isinstance(error, str):
            message = error
        elif isinstance(payload, dict):
            message = str(payload.get("message") or payload.get("detail") or "")
    except ValueError:
        message = response.text
    message = " ".join(message.split())[:300] or response.reason_phrase
    return f"The model server answered {response.status_code}: {message}"

"""The load: streamed chat completions at a concurrency, per-request timings, a tap before vLLM."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import statistics
import time
from dataclasses import dataclass

import httpx
import orjson
import psutil

from bench.serving.common import prompt_text


# --- 5. the load ----------------------------------------------------------------------------------------
class Tap:
    """A TCP relay in front of vLLM that stamps when each request's first content token passes."""

    EVENT = re.compile(rb"data: (\{.*?\})\n\n", re.DOTALL)

    def __init__(self, upstream_port: int, port: int) -> None:
        self.upstream_port, self.port = upstream_port, port
        self.first_token: dict[str, float] = {}
        self.unparsed = 0
        # One request at a time (sequential phases): its first byte in, its last byte out.
        self.exchange_in: float | None = None
        self.exchange_out: float | None = None

    def take_exchange(self) -> float | None:
        """Seconds between the request's first byte reaching the tap and the answer's last byte leaving it."""
        found = None
        if self.exchange_in is not None and self.exchange_out is not None:
            found = self.exchange_out - self.exchange_in
        self.exchange_in = self.exchange_out = None
        return found

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _handle(self, client_reader, client_writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def upward() -> None:
            while data := await client_reader.read(65536):
                if self.exchange_in is None:
                    self.exchange_in = time.perf_counter()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downward() -> None:
            buffer = b""
            while data := await up_reader.read(65536):
                now = time.perf_counter()
                client_writer.write(data)  # pass it on first, look at it afterwards
                self.exchange_out = time.perf_counter()
                buffer = self._scan(buffer + data, now)
                await client_writer.drain()
            client_writer.close()

        try:
            await asyncio.gather(upward(), downward())
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # a side closed, or the run is over
        finally:
            up_writer.close()
            client_writer.close()

    def _scan(self, buffer: bytes, now: float) -> bytes:
        end = 0
        for match in self.EVENT.finditer(buffer):
            end = match.end()
            try:
                event = orjson.loads(match.group(1))
            except orjson.JSONDecodeError:
                self.unparsed += 1
                continue
            if event.get("id") not in self.first_token and _has_content(event):
                self.first_token[event["id"]] = now
        rest = buffer[end:]
        return rest[-65536:]


def _has_content(event: dict) -> bool:
    return any((choice.get("delta") or {}).get("content") for choice in event.get("choices") or [])


@dataclass
class Target:
    name: str
    url: str
    headers: dict
    model: str = ""
    seed: bool = False
    ignore_eos: bool = True  # every answer exactly max_tokens long; False lets answers stop early
    # The gateway forwards no `ignore_eos`; `min_tokens` = max_tokens gives the same equal lengths there.
    min_tokens: bool = False
    models: tuple[str, ...] = ()  # when given, request i asks models[i % len(models)] (load split)


def nearest_rank(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] if ordered else float("nan")


async def one_request(
    client: httpx.AsyncClient,
    target: Target,
    index: int,
    *,
    stream: bool,
    max_tokens: int,
    seed_prompt=None,
    tap: Tap | None = None,
) -> dict:
    started = time.perf_counter()
    if target.seed:
        prompt = seed_prompt(index)
        body = {"prompt": prompt, "max_new_tokens": max_tokens, "min_new_tokens": max_tokens}
        response = await client.post(target.url, json=body)
        done = time.perf_counter()
        text = response.json()["response"][len(prompt) :] if response.status_code == 200 else ""
        return {
            "ok": response.status_code == 200,
            "status": response.status_code,
            "latency": done - started,
            "text": text,
        }
    body = {
        "model": target.models[index % len(target.models)] if target.models else target.model,
        "messages": [{"role": "user", "content": prompt_text(index)}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "top_p": 0.9,
        "ignore_eos": target.ignore_eos,
    }
    if target.min_tokens:
        body["min_tokens"] = max_tokens
    if not stream:
        response = await client.post(target.url, json=body, headers=target.headers)
        done = time.perf_counter()
        ok = response.status_code == 200
        usage = response.json().get("usage", {}) if ok else {}
        return {
            "ok": ok,
            "status": response.status_code,
            "latency": done - started,
            "tokens": usage.get("completion_tokens", 0),
            "prompt_tokens": usage.get("prompt_tokens", 0),
        }
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    first = request_id = None
    tokens = prompt_tokens = 0
    async with client.stream("POST", target.url, json=body, headers=target.headers) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            now = time.perf_counter()
            event = orjson.loads(line[6:])
            if first is None and _has_content(event):
                first, request_id = now, event.get("id")
            if event.get("usage"):
                tokens, prompt_tokens = event["usage"]["completion_tokens"], event["usage"]["prompt_tokens"]
        status = response.status_code
    done = time.perf_counter()
    found = {
        "ok": status == 200 and first is not None,
        "status": status,
        "latency": done - started,
        "tokens": tokens,
        "prompt_tokens": prompt_tokens,
        "ttft": (first - started) if first else None,
    }
    if tap is not None and request_id in tap.first_token:
        found["after_vllm_ms"] = 1000 * (first - tap.first_token[request_id])
    return found


def _cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    seconds = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            try:
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        seconds[name] = total
    return seconds


async def run_phase(
    label: str,
    target: Target,
    *,
    requests: int,
    concurrency: int,
    max_tokens: int,
    stream: bool = False,
    tap: Tap | None = None,
    seed_prompt=None,
    seed_tokens=None,
    watch: dict[str, list[int]] | None = None,
) -> dict:
    watch = {"bench": [os.getpid()], **(watch or {})}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: list[dict] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    load_before, cpu_before = os.getloadavg()[0], _cpu_seconds(watch)
    machine_before = psutil.cpu_times()
    async with httpx.AsyncClient(timeout=httpx.Timeout(None), limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                try:
                    results.append(
                        await one_request(
                            client,
                            target,
                            index,
                            stream=stream,
                            max_tokens=max_tokens,
                            seed_prompt=seed_prompt,
                            tap=tap,
                        )
                    )
                except httpx.HTTPError as exc:
                    results.append({"ok": False, "status": type(exc).__name__, "latency": 0.0})

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    cpu_after, machine_after = _cpu_seconds(watch), psutil.cpu_times()
    busy = sum(machine_after) - sum(machine_before) - (machine_after.idle - machine_before.idle)
    ok = [r for r in results if r["ok"]]
    if seed_tokens is not None:
        for result in ok:
            result["tokens"] = seed_tokens(result.pop("text"))
    for result in results:
        result.pop("text", None)
    latencies = [r["latency"] for r in ok]
    tokens = sum(r.get("tokens", 0) for r in ok)
    summary = {
        "label": label,
        "target": target.name,
        "stream": stream,
        "requests": requests,
        "concurrency": concurrency,
        "max_tokens": max_tokens,
        "ok": len(ok),
        "errors": sorted({str(r["status"]) for r in results if not r["ok"]}),
        "wall_s": wall,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall,
        "requests_per_s": len(ok) / wall,
        "tokens_per_request": sorted({r.get("tokens", 0) for r in ok}),
        "prompt_tokens_mean": statistics.fmean(r.get("prompt_tokens", 0) for r in ok) if ok else 0,
        "latency_p50_s": nearest_rank(latencies, 50),
        "latency_p95_s": nearest_rank(latencies, 95),
        "latency_max_s": max(latencies, default=float("nan")),
        "cpu_s": {name: cpu_after[name] - cpu_before[name] for name in watch},
        "web_cpu_ms_per_request": 1000 * (cpu_after["web"] - cpu_before["web"]) / max(1, len(ok))
        if "web" in watch
        else None,
        "machine_cores_busy": busy / wall,
        "load": [load_before, os.getloadavg()[0]],
    }
    if stream:
        ttft = [r["ttft"] for r in ok if r.get("ttft") is not None]
        summary |= {"ttft_p50_s": nearest_rank(ttft, 50), "ttft_p95_s": nearest_rank(ttft, 95)}
        after = [r["after_vllm_ms"] for r in ok if "after_vllm_ms" in r]
        if tap is not None:
            summary |= {
                "tap_matched": len(after),
                "after_vllm_p50_ms": nearest_rank(after, 50),
                "after_vllm_p95_ms": nearest_rank(after, 95),
                "after_vllm_max_ms": max(after, default=None),
            }
    print(
        f"  {label}: {len(ok)}/{requests} ok, {wall:.1f} s, {summary['tokens_per_s']:.1f} tokens/s, "
        f"p50 {summary['latency_p50_s']:.2f} s, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    return summary


async def sequential(
    label: str, pair: list[Target], *, count: int, max_tokens: int, stream: bool, tap: Tap | None = None
) -> dict:
    """Alternate the two targets one request at a time: medians, paired differences and, through the
    tap, each request's time outside vLLM (client latency minus the tap's first-byte-in to last-byte-out)."""
    found: dict[str, list[dict]] = {t.name: [] for t in pair}

    async def one(client, target: Target, index: int) -> dict:
        if tap is not None:
            tap.take_exchange()
        result = await one_request(client, target, index, stream=stream, max_tokens=max_tokens, tap=tap)
        upstream = tap.take_exchange() if tap is not None else None
        if upstream is not None:
            result["outside_vllm_ms"] = 1000 * (result["latency"] - upstream)
        return result

    async with httpx.AsyncClient(timeout=httpx.Timeout(120)) as client:
        for target in pair:  # warm the connection of each
            await one(client, target, 0)
        for index in range(count):
            for target in pair if index % 2 == 0 else pair[::-1]:
                found[target.name].append(await one(client, target, index))
    key = "ttft" if stream else "latency"
    first, second = (found[t.name] for t in pair)
    summary = {
        "label": label,
        "count": count,
        "max_tokens": max_tokens,
        "stream": stream,
        "ok": {t.name: sum(r["ok"] for r in found[t.name]) for t in pair},
    }
    for target in pair:
        results = [r for r in found[target.name] if r["ok"]]
        for name, values in (
            (key, [r[key] * 1000 for r in results]),
            ("outside_vllm", [r["outside_vllm_ms"] for r in results if "outside_vllm_ms" in r]),
            ("after_vllm", [r["after_vllm_ms"] for r in results if "after_vllm_ms" in r]),
        ):
            if values:
                summary[f"{target.name}_{name}_p50_ms"] = nearest_rank(values, 50)
                summary[f"{target.name}_{name}_p95_ms"] = nearest_rank(values, 95)
    paired = [1000 * (b[key] - a[key]) for a, b in zip(first, second, strict=True) if a["ok"] and b["ok"]]
    summary["paired_diff_p50_ms"] = nearest_rank(paired, 50)
    summary["median_diff_ms"] = (
        summary[f"{pair[1].name}_{key}_p50_ms"] - summary[f"{pair[0].name}_{key}_p50_ms"]
    )
    if f"{pair[1].name}_outside_vllm_p50_ms" in summary:
        summary["outside_vllm_diff_p50_ms"] = (
            summary[f"{pair[1].name}_outside_vllm_p50_ms"] - summary[f"{pair[0].name}_outside_vllm_p50_ms"]
        )
    print(f"  {label}: {json.dumps(summary)}", flush=True)
    return summary


async def load_phases(
    args, direct: Target, gateway: Target, direct_tap: Target, gateway_tap: Target, tap: Tap, watch: dict
) -> dict:
    await tap.start()
    load = {"requests": args.requests, "concurrency": args.concurrency, "max_tokens": args.max_tokens}
    try:
        found: dict = {"load": [], "stream": [], "sequential": []}
        for target in (direct, gateway, gateway_tap, direct_tap):  # warm-up, not recorded
            await run_phase("warm-up", target, requests=4, concurrency=4, max_tokens=8, stream=True, tap=tap)
        for round_ in range(args.rounds):
            for target in (direct, gateway):
                found["load"].append(await run_phase(f"round {round_ + 1}", target, **load, watch=watch))
        if not args.skip_stream:
            found["stream"].append(await run_phase("stream", direct, **load, stream=True, watch=watch))
            for target in (direct_tap, gateway_tap):
                found["stream"].append(
                    await run_phase("stream via tap", target, **load, stream=True, tap=tap, watch=watch)
                )
        found["sequential"].append(
            await sequential(
                "overhead, max_tokens 1", [direct, gateway], count=args.small, max_tokens=1, stream=False
            )
        )
        found["sequential"].append(
            await sequential(
                "overhead via tap, max_tokens 1",
                [direct_tap, gateway_tap],
                count=args.small,
                max_tokens=1,
                stream=False,
                tap=tap,
            )
        )
        if not args.skip_stream:
            found["sequential"].append(
                await sequential(
                    "first token via tap, stream of 16",
                    [direct_tap, gateway_tap],
                    count=args.small // 2,
                    max_tokens=16,
                    stream=True,
                    tap=tap,
                )
            )
        found["tap_unparsed_events"] = tap.unparsed
        return found
    finally:
        tap.server.close()

"""Latency from a worker logging a training step to the browsers receiving it; target p95 < 500 ms.

    .venv/bin/python bench/event_latency.py            # --clients 20 --events 200 --rate 10

A fresh LATHE_DATA_DIR under bench/out/, migrated; a user, two `train` jobs, a session; uvicorn
(`--ws websockets-sansio`); Redis DB 13, namespace `bench-`, flushed at the end. An emitter process (Django
set up, as in a Celery worker) calls `job_event_emit(job, "metric", {"step", "t_sent", ...})` at a steady
rate; latency = receive time - `t_sent` (same clock; the database insert counts). Baseline: N channel-layer
receivers on the job's group in this process (no uvicorn, consumer or websocket). Then N websocket clients
(session cookie, Origin) on the other job, and one more with ?after=0 that must get every event from history.
Prints a Markdown table; appends a JSON line to bench/out/event_latency.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import django
import psutil
import redis
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))
REDIS_URL = "redis://127.0.0.1:6379/13"
HEADER = "| path | received / expected | dups | p50 ms | p95 ms | p99 ms | max ms | emit call p50 / p95 ms |"
HEADER += " cores busy: machine of N (ours) | load 1-min |"


def emit(job_id: int, count: int, rate: float) -> None:
    """The worker's side: one process, Django set up, events at a steady rate."""
    django.setup()
    from jobs.events import job_event_emit

    print("READY", flush=True)
    time.sleep(0.5)  # the parent starts measuring CPU now
    cpu_start, start, durations = time.process_time(), time.monotonic(), []
    for step in range(count):
        time.sleep(max(0.0, start + step / rate - time.monotonic()))
        t_sent = time.time()
        job_event_emit(job_id, "metric", {"step": step, "t_sent": t_sent, "loss": 2 / (1 + step), "lr": 2e-4})
        durations.append(time.time() - t_sent)
    print(json.dumps({"emit_s": durations, "cpu_s": time.process_time() - cpu_start}), flush=True)


def make_fixtures() -> tuple[list[int], str]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from jobs.models import Job
    from jobs.states import JobKind

    user = get_user_model().objects.create_user(username="bench", password="bench-password-1")  # noqa: S106
    job_ids = [Job.objects.create(owner=user, kind=JobKind.TRAIN, queue="bench-gpu").pk for _ in range(2)]
    client = Client()
    client.force_login(user)
    connection.close()
    return job_ids, client.cookies["sessionid"].value


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--ws", "websockets-sansio"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=REPO, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)  # noqa: S310
            return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("uvicorn did not start or exited:\n" + log_path.read_text()[-3000:])


def observed(message: dict, received: float) -> tuple[int, int, float]:
    return message["seq"], message["payload"]["step"], received - message["payload"]["t_sent"]


def percentile(values: list[float], pct: float) -> float:
    return values[max(0, math.ceil(pct / 100 * len(values)) - 1)]  # nearest rank


def summarize(records: list[list[tuple]], events: int) -> dict:
    latencies = sorted(latency for record in records for _, _, latency in record)
    unique = [len({step for _, step, _ in record}) for record in records]
    result = {"received": len(latencies), "expected": len(records) * events, "min_unique": min(unique)}
    result["duplicates"] = sum(len(record) - count for record, count in zip(records, unique, strict=True))
    for name, pct in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
        result[f"{name}_ms"] = 1000 * percentile(latencies, pct) if latencies else float("nan")
    return result


async def run_phase(job_id: int, args, records: list[list[tuple]], pids: dict[str, int]) -> dict:
    """Run the emitter for one job while `records` fill; stop when every client has every step."""
    command = ["--emit", str(job_id), "--events", str(args.events), "--rate", str(args.rate)]
    emitter = await asyncio.create_subprocess_exec(sys.executable, __file__, *command, stdout=-1, cwd=REPO)
    if (await emitter.stdout.readline()).strip() != b"READY":
        raise RuntimeError("the emitter did not start")
    # CPU over the phase: the whole machine, each of our processes, and redis-server (shared) if readable.
    processes = {name: psutil.Process(pid) for name, pid in (pids | {"clients": os.getpid()}).items()}
    redis_servers = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]
    processes |= {f"redis-server {p.pid}": p for p in redis_servers}
    cpu_start = {name: sum(process.cpu_times()[:2]) for name, process in processes.items()}
    load, wall_start, _ = os.getloadavg()[0], time.monotonic(), psutil.cpu_percent(None)
    worker = json.loads(await emitter.stdout.readline())
    await emitter.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len({r[1] for r in rec}) < args.events for rec in records):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let duplicates, if any, arrive
    wall = time.monotonic() - wall_start
    cpu = {name: sum(p.cpu_times()[:2]) - cpu_start[name] for name, p in processes.items()}
    cores = {name: round(seconds / wall, 3) for name, seconds in (cpu | {"emitter": worker["cpu_s"]}).items()}
    machine = psutil.cpu_percent(None) / 100 * psutil.cpu_count()
    emit_s = sorted(worker["emit_s"])
    emit_ms = {"p50": 1000 * percentile(emit_s, 50), "p95": 1000 * percentile(emit_s, 95)}
    usage = dict(wall_s=wall, machine_cores_busy=machine, cores=cores, load=[load, os.getloadavg()[0]])
    return summarize(records, args.events) | usage | {"emit_call_ms": emit_ms}


async def baseline(job_id: int, args) -> dict:
    from channels.layers import get_channel_layer

    from jobs.events import job_group_name

    layer = get_channel_layer()
    channels = [await layer.new_channel() for _ in range(args.clients)]
    for channel in channels:
        await layer.group_add(job_group_name(job_id), channel)
    records: list[list[tuple]] = [[] for _ in channels]

    async def receive(channel: str, record: list) -> None:
        while True:
            record.append(observed((await layer.receive(channel))["message"], time.time()))

    tasks = [asyncio.create_task(receive(c, r)) for c, r in zip(channels, records, strict=True)]
    result = await run_phase(job_id, args, records, {})
    for task, channel in zip(tasks, channels, strict=True):
        task.cancel()
        await layer.group_discard(job_group_name(job_id), channel)
    await layer.close_pools()
    return result


async def watch(url: str, cookie: str, origin: str, record: list | None, until: int = 0) -> dict:
    """One browser: snapshot, history, then live events into `record`; or replay `until` events and return."""
    started, replayed = time.monotonic(), []
    async with connect(url, origin=origin, additional_headers={"Cookie": cookie}, max_queue=None) as ws:
        if json.loads(await ws.recv())["type"] != "snapshot":
            raise RuntimeError("the first message is not the snapshot")
        while record is None and len(replayed) < until:
            replayed.append(observed(json.loads(await asyncio.wait_for(ws.recv(), 10)), time.time()))
        if record is None:
            seqs, steps = [seq for seq, _, _ in replayed], [step for _, step, _ in replayed]
            complete = seqs == sorted(set(seqs)) and steps == list(range(until))
            return {"events": len(replayed), "complete_in_order": complete, "s": time.monotonic() - started}
        record.append(None)  # marks "connected"; removed before measuring
        async for raw in ws:
            received = time.time()
            record.append(observed(json.loads(raw), received))
    return {}


async def websockets_phase(job_id: int, port: int, cookie: str, args, server_pid: int) -> tuple[dict, dict]:
    url, origin = f"ws://127.0.0.1:{port}/ws/jobs/{job_id}/?after=0", f"http://127.0.0.1:{port}"
    records: list[list] = [[] for _ in range(args.clients)]
    tasks = [asyncio.create_task(watch(url, cookie, origin, record)) for record in records]
    while not all(records):
        if done := [t for t in tasks if t.done()]:
            raise RuntimeError(f"a client could not connect: {done[0].exception()!r}")
        await asyncio.sleep(0.05)
    for record in records:
        record.pop(0)
    result = await run_phase(job_id, args, records, {"uvicorn": server_pid})
    for task in tasks:
        task.cancel()
    replay = await watch(url, cookie, origin, None, until=args.events)
    return result, replay


def row(name: str, result: dict) -> str:
    share = ", ".join(f"{process} {cores:.2f}" for process, cores in result["cores"].items())
    return (
        f"| {name} | {result['received']:,} / {result['expected']:,} | {result['duplicates']} "
        + "".join(f"| {result[f'{pct}_ms']:.1f} " for pct in ("p50", "p95", "p99", "max"))
        + f"| {result['emit_call_ms']['p50']:.1f} / {result['emit_call_ms']['p95']:.1f} "
        + f"| {result['machine_cores_busy']:.2f} of {psutil.cpu_count()}: {share} "
        f"| {result['load'][0]:.2f} → {result['load'][1]:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--emit", type=int, help=argparse.SUPPRESS)  # internal: the emitter process
    args = parser.parse_args()
    if args.emit:
        return emit(args.emit, args.events, args.rate)
    data_dir = OUT / f"event-latency-{time.strftime('%Y%m%d-%H%M%S')}"
    os.environ.pop("DATABASE_URL", None)  # SQLite in the fresh data folder, as on a laptop
    os.environ.update(DJANGO_SETTINGS_MODULE="webapp.settings", LATHE_DATA_DIR=str(data_dir))
    os.environ.update(REDIS_URL=REDIS_URL, LATHE_REDIS_NAMESPACE="bench-", LATHE_LOG_LEVEL="WARNING")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, check=True)
    django.setup()
    from lathe_common.embedded_redis import free_port

    (baseline_job, ws_job), session = make_fixtures()
    port, server = free_port(), None
    try:
        server = start_server(port, data_dir / "web.log")
        base = asyncio.run(baseline(baseline_job, args))
        live, replay = asyncio.run(websockets_phase(ws_job, port, f"sessionid={session}", args, server.pid))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        redis.Redis.from_url(REDIS_URL).flushdb()
    ok = live["received"] == live["expected"] and not live["duplicates"] and live["p95_ms"] < 500
    ok = ok and replay["complete_in_order"] and replay["events"] == args.events
    print(f"{args.clients} clients, {args.events} events at {args.rate:g}/s; data in {data_dir}\n")
    print(HEADER + "\n|" + "---|" * 10)
    print(row("channel layer only (baseline)", base))
    print(row("websocket via uvicorn (ours)", live))
    print(f"\nreplay ?after=0: {replay}")
    print(f"verdict (p95 < 500 ms, each event exactly once, replay complete): {'MET' if ok else 'NOT MET'}")
    line = dict(at=time.time(), args=vars(args), baseline=base, websocket=live, replay=replay, ok=ok)
    with (OUT / "event_latency.jsonl").open("a") as log:
        log.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()

"""The gateway's own time per request, this tree against an earlier commit, in one run.

    .venv/bin/python bench/gateway_overhead.py --base 19c7aac          # about 2 minutes
    .venv/bin/python bench/gateway_overhead.py --base 19c7aac --requests 100

Both trees serve the same site (uvicorn `webapp.asgi:application`, SQLite in a fresh data folder, the
machine's Redis, DB 12) in front of one stub that answers every chat completion at once, so what is
left is the gateway: the body limit, the key, the per-user limits, the request filter, the route and
the relay. Requests are sequential (`max_tokens` 1), one to the stub directly and one through each
site in turn, so that all three see the same machine at the same moments. The overhead is the median
of (through the site - direct) over paired requests.

Prints a table and appends a JSON line to bench/results/gateway_overhead.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "gateway_overhead"
RESULTS = REPO / "bench" / "results" / "gateway_overhead.jsonl"
PYTHON = REPO / ".venv" / "bin" / "python"
MODEL = "bench/stub-model"
STUB_BODY = json.dumps(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
).encode()
# Both sites get limits far above what the run sends, so no request is refused.
OPEN_LIMITS = {
    "LATHE_GATEWAY_RATE_LIMIT": "10000000",
    "LATHE_QUOTA_REQUESTS_PER_MINUTE": "10000000",
    "LATHE_QUOTA_CONCURRENT_REQUESTS": "64",
}
SETUP = """
import django, sys
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from accounts.services import api_token_create
from models_app.models import BaseModel, ModelServer, ServerState
user = get_user_model().objects.create_user(username="bench", password="bench-password-1")
model = BaseModel.objects.create(hf_id=%(model)r, display_name="stub", local_dir="/nonexistent")
ModelServer.objects.create(owner=user, model=model, managed=False, state=ServerState.READY,
                           host="127.0.0.1", port=%(port)d, secret="stub")
print("KEY", api_token_create(user=user, name="bench")[1])
"""


def stub_start() -> int:
    """An OpenAI-shaped upstream in a thread of this process, answering at once."""
    ready = threading.Event()
    port_box: list[int] = []

    async def handle(reader, writer) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        try:
            while True:
                headers = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", headers)
                if length:
                    await reader.readexactly(int(length.group(1)))
                writer.write(head % len(STUB_BODY) + STUB_BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    ready.wait(10)
    return port_box[0]


def tree_for(rev: str) -> Path:
    tree = OUT / f"tree-{rev}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=REPO, check=True)
    return tree


def site_start(label: str, tree: Path, stub_port: int, web_port: int) -> tuple[subprocess.Popen, str]:
    data = OUT / f"data-{label}"
    shutil.rmtree(data, ignore_errors=True)
    env = {
        **os.environ,
        **OPEN_LIMITS,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "LATHE_DATA_DIR": str(data),
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "LATHE_REDIS_NAMESPACE": f"bench-overhead-{label}-",
        "LATHE_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    setup = subprocess.run(
        [str(PYTHON), "-c", SETUP % {"model": MODEL, "port": stub_port}],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = next(line.split()[1] for line in setup.stdout.splitlines() if line.startswith("KEY "))
    log = (OUT / f"web-{label}.log").open("wb")
    command = [str(PYTHON), "-m", "uvicorn", "webapp.asgi:application", "--port", str(web_port)]
    web = subprocess.Popen(
        command + ["--no-access-log"],
        cwd=tree,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{web_port}/healthz", timeout=2)
            return web, key
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"the {label} site did not start: see {log.name}")


def measure(targets: dict[str, tuple[str, str]], requests: int) -> dict[str, list[float]]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say ok."}], "max_tokens": 1}
    clients = {name: httpx.Client(timeout=30) for name in targets}
    times: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    for round_index in range(requests + 20):
        # The sites take turns going first: with a fixed order the site asked last measured about
        # 0.3-0.4 ms slower even against itself (bench/RESULTS.md, section 15).
        order = names[:1] + (names[1:] if round_index % 2 == 0 else names[:0:-1])
        for name in order:
            url, key = targets[name]
            started = time.perf_counter()
            response = clients[name].post(url, json=body, headers={"Authorization": f"Bearer {key}"})
            elapsed = 1000 * (time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
            if round_index >= 20:  # the first requests fill caches and connection pools
                times[name].append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier commit to compare with")
    parser.add_argument("--requests", type=int, default=300, help="paired requests per target")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    base_rev = subprocess.run(
        ["git", "rev-parse", "--short", args.base], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    head_rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    stub_port = stub_start()
    sites = []
    try:
        base_web, base_key = site_start("base", tree_for(base_rev), stub_port, 18731)
        sites.append(base_web)
        head_web, head_key = site_start("head", REPO, stub_port, 18732)
        sites.append(head_web)
        targets = {
            "direct": (f"http://127.0.0.1:{stub_port}/v1/chat/completions", "stub"),
            f"gateway {base_rev}": ("http://127.0.0.1:18731/v1/chat/completions", base_key),
            f"gateway {head_rev} (this tree)": ("http://127.0.0.1:18732/v1/chat/completions", head_key),
        }
        times = measure(targets, args.requests)
    finally:
        for web in sites:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(30)
    direct = times.pop("direct")
    found = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "requests": args.requests,
        "direct_p50_ms": statistics.median(direct),
        "gateways": {
            name: {
                "p50_ms": statistics.median(values),
                "overhead_p50_ms": statistics.median(v - d for v, d in zip(values, direct, strict=True)),
                "p95_ms": sorted(values)[int(0.95 * len(values)) - 1],
            }
            for name, values in times.items()
        },
    }
    print(f"direct to the stub: p50 {found['direct_p50_ms']:.2f} ms")
    for name, figures in found["gateways"].items():
        print(
            f"{name}: p50 {figures['p50_ms']:.2f} ms, p95 {figures['p95_ms']:.2f} ms, "
            f"overhead (paired median) {figures['overhead_p50_ms']:.2f} ms"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as results:
        results.write(json.dumps(found) + "\n")


if __name__ == "__main__":
    main()

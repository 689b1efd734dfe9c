"""The site as `manage.py dev` runs it (web server and a Celery worker), and its process helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.serving.common import REDIS_URL, REPO


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
    from lathe_common.site_commands import web_command, worker_command
    from models_app.ml.vllm_server import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = spawn("web", web_command(sys.executable, port), log_dir)
    worker = None
    try:
        if with_worker:
            queues = ["bench-data", "bench-gpu"]
            worker = spawn(
                "worker", worker_command(sys.executable, queues, concurrency, "bench@%h", alone=True), log_dir
            )
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

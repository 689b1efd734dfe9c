"""Real processes for tests: a Celery worker and the ASGI server, on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.db import connection

from jobs.queues import ALL_QUEUES
from lathe_common.site_commands import web_command, worker_command

REPO = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """A DATABASE_URL for the database pytest-django created, so child processes share it."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"postgres://{auth}{settings.get('HOST') or '127.0.0.1'}{port}/{settings['NAME']}"


def child_env() -> dict[str, str]:
    """The site's own environment: the test thread's async-unsafe exemption stays in the test process,
    so an ORM call made from async code in the web server fails here as it would for users."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return {**env, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1"}


def start_worker(
    log_path: Path, *, name: str = "test-worker", queues: tuple[str, ...] = ALL_QUEUES
) -> subprocess.Popen:
    log = open(log_path, "ab")
    # Two slots, as `make dev` has: a model server holds one while a job trains in the other.
    return subprocess.Popen(
        worker_command(sys.executable, queues, 2, f"{name}@%h", alone=True),
        cwd=REPO,
        env={**child_env(), "LATHE_RAY_ADDRESS": ray_test_address()},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def ray_test_address() -> str:
    """The dashboard of the session's Ray cluster (tests/ray_fixtures.py), when a test has started it."""
    return f"http://127.0.0.1:{os.environ['LATHE_TEST_RAY_PORT']}"


def wait_for_worker(process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("The Celery worker exited:\n" + log_path.read_text()[-3000:])
        if b"ready." in log_path.read_bytes():
            return
        time.sleep(0.2)
    raise RuntimeError("The Celery worker did not start:\n" + log_path.read_text()[-3000:])


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    process = subprocess.Popen(
        web_command(sys.executable, port),
        cwd=REPO,
        env=child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("The web server exited:\n" + log_path.read_text()[-3000:])
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)  # noqa: S310
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("The web server did not start:\n" + log_path.read_text()[-3000:])


def kill_group(process: subprocess.Popen) -> None:
    """Kill a process started in its own group and all its children at once, as a lost machine would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group is gone already
        pass
    process.wait(timeout=10)


def stop(process: subprocess.Popen) -> None:
    """A clean shutdown, then nothing of the process group left: no pool child keeps a database session."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    kill_group(process)

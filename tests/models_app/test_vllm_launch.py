"""How Lathe starts vLLM: its flags, float32 where the CPU would emulate bf16, a minimal environment."""

import sys
from pathlib import Path

from models_app.ml import vllm_server
from models_app.ml.vllm_server import VllmLaunch, default_dtype, vllm_start, vllm_stop
from tests.helpers import wait_until

INTEL_AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"


def test_it_serves_in_float32_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(vllm_server.Path, "exists", lambda self: False)  # no NVIDIA device
    assert default_dtype(AVX2_ONLY) == "float32"
    assert default_dtype(INTEL_AMX) is None  # bf16 is native there: the model's own dtype


def test_it_leaves_the_dtype_to_vllm_on_a_gpu_machine(monkeypatch):
    monkeypatch.setattr(vllm_server.Path, "exists", lambda self: str(self) == "/dev/nvidia0")
    assert default_dtype(AVX2_ONLY) is None


def test_it_passes_the_dtype_unless_the_operator_chose_one():
    launch = VllmLaunch(model_dir=Path("/m"), served_name="m", port=8001, api_key="k", dtype="float32")
    argv = launch.argv()
    assert argv[argv.index("--dtype") + 1] == "float32"
    launch.extra_args = ["--dtype", "bfloat16"]  # LATHE_VLLM_EXTRA_ARGS wins
    assert launch.argv().count("--dtype") == 1 and launch.argv()[-1] == "bfloat16"
    assert "--dtype" not in VllmLaunch(model_dir=Path("/m"), served_name="m", port=1, api_key="k").argv()


def test_it_starts_vllm_without_the_workers_secrets(monkeypatch, tmp_path):
    """The environment vllm_start gives the process, read from /proc: the allowlist and the key, no secret."""
    worker_secrets = {
        "SECRET_KEY": "django-secret",
        "DATABASE_URL": "postgres://lathe:password@db/lathe",
        "REDIS_URL": "redis://:password@redis:6379/0",
        "AWS_ACCESS_KEY_ID": "AKIA-test",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "HF_TOKEN": "hf_secret",
        "LATHE_S3_BUCKET": "bucket",
    }
    for name, value in worker_secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")
    monkeypatch.setenv("LATHE_CHILD_ENV_ALLOW", "SITE_LICENSE_SERVER")
    monkeypatch.setenv("SITE_LICENSE_SERVER", "license.example")
    # A stand-in for vLLM's command (LATHE_VLLM_COMMAND), started exactly as vLLM is.
    launch = VllmLaunch(
        model_dir=Path("/m"),
        served_name="m",
        port=8001,
        api_key="server-secret",
        command=f"{sys.executable} -c 'import time; time.sleep(60)'",
    )
    process = vllm_start(launch, tmp_path / "vllm.log")
    try:
        # Read once the child has exec'd its command (before that, /proc shows the forked parent's).
        environ_file = Path(f"/proc/{process.pid}/environ")
        raw = wait_until(
            lambda: (text := environ_file.read_bytes().decode()) * ("VLLM_API_KEY=" in text),
            timeout=10,
            message="the started command's environment",
        )
        environ = dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)
    finally:
        vllm_stop(process.pid, grace_seconds=5)
    assert not set(worker_secrets) & set(environ)
    assert "secret" not in raw.replace("server-secret", "")
    assert environ["VLLM_API_KEY"] == "server-secret"
    assert environ["CUDA_VISIBLE_DEVICES"] == "1" and environ["VLLM_CPU_KVCACHE_SPACE"] == "7"
    assert environ["SITE_LICENSE_SERVER"] == "license.example"  # what the operator allowed
    assert environ["PATH"] and str(vllm_server.PROJECT_ROOT) in environ["PYTHONPATH"]


def test_it_loads_lathes_guard_into_vllm():
    argv = VllmLaunch(model_dir=Path("/m"), served_name="m", port=1, api_key="k").argv()
    assert argv[argv.index("--middleware") + 1] == "models_app.ml.vllm_guard.VllmGuard"


def test_on_a_cpu_machine_vllm_uses_the_compile_cache_it_can_load(monkeypatch):
    """vllm-cpu 0.32 fails to load its AOT compile cache and compiles at every start (40 s here)."""
    monkeypatch.setattr(vllm_server, "gpu_machine", lambda: False)
    monkeypatch.delenv("VLLM_USE_AOT_COMPILE", raising=False)
    launch = VllmLaunch(model_dir=Path("/m"), served_name="m", port=1, api_key="k")
    assert launch.env()["VLLM_USE_AOT_COMPILE"] == "0"
    monkeypatch.setenv("VLLM_USE_AOT_COMPILE", "1")  # the operator's choice wins
    assert launch.env()["VLLM_USE_AOT_COMPILE"] == "1"
    monkeypatch.setattr(vllm_server, "gpu_machine", lambda: True)
    monkeypatch.delenv("VLLM_USE_AOT_COMPILE")
    assert "VLLM_USE_AOT_COMPILE" not in launch.env()  # CUDA builds: vLLM's own default

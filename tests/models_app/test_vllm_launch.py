"""How Lathe starts vLLM: flags from the launch, float32 where the CPU would emulate bf16."""

from pathlib import Path

from models_app.ml import vllm_server
from models_app.ml.vllm_server import VllmLaunch, default_dtype

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

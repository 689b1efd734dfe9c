"""What this machine has to train on: its NVIDIA GPUs, or its CPU.

GPUs are read through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``) when it is
installed and a driver answers: NVML reads memory and utilisation without creating a CUDA
context, which would take half a gigabyte of the GPU per process. Without it, torch.cuda is
asked (which does create one); without either, there are no GPUs.

NVML numbers GPUs in PCI bus order and ignores ``CUDA_VISIBLE_DEVICES``; the list follows that
variable as CUDA does (by index or UUID), so ``index`` is the number torch would use, provided
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (the order is then the same).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

MIB = 2**20
BF16_MIN_COMPUTE_CAPABILITY = (8, 0)  # Ampere


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_mb: int  # MiB, as nvidia-smi reports
    memory_used_mb: int
    utilization_percent: int | None  # None where it can't be read (torch alone, MIG slices)
    bf16_supported: bool

    @property
    def memory_total_gb(self) -> float:
        """GiB, the unit of :mod:`training_app.ml.memory`."""
        return self.memory_total_mb / 1024


def list_gpus(*, nvml: ModuleType | None = None) -> list[GpuInfo]:
    """The GPUs this process can use; an empty list on a machine without any.

    ``nvml`` replaces the ``pynvml`` module (tests pass a fake one).
    """
    nvml = nvml if nvml is not None else _import_pynvml()
    if nvml is not None:
        gpus = _nvml_gpus(nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if gpus is not None:
            return gpus
    return _torch_gpus()


def device_kind() -> str:
    """'cuda' if torch can train on a GPU here, else 'cpu'."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_info(*, cpuinfo_path: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """Cores this process may use, memory (MiB) and the processor's name, for a CPU worker.

    ``memory_used_mb`` is what is not available to a new process (total minus available), which
    counts reclaimable page cache as free.
    """
    import psutil

    from lathe_common.cpu import usable_cores

    memory = psutil.virtual_memory()
    cores = usable_cores()
    return {
        "cores": cores,
        "logical_cores": psutil.cpu_count(logical=True) or cores,
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_total_mb": memory.total // MIB,
        "memory_used_mb": (memory.total - memory.available) // MIB,
        "model_name": _cpu_model_name(cpuinfo_path),
    }


def _import_pynvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def _nvml_gpus(nvml: ModuleType, visible: str | None) -> list[GpuInfo] | None:
    """GPUs through NVML, or None if no driver answers (then torch is asked)."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:
        return None
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        return [
            _nvml_gpu(nvml, index, handle) for index, handle in enumerate(_visible(nvml, handles, visible))
        ]
    except nvml.NVMLError:
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def _visible(nvml: ModuleType, handles: list[Any], visible: str | None) -> list[Any] | None:
    """The handles CUDA_VISIBLE_DEVICES lets CUDA see, in its order; None if NVML can't tell."""
    if visible is None:
        return handles
    chosen = []
    for entry in (part.strip() for part in visible.split(",")):
        if entry.isdigit():
            if int(entry) >= len(handles):
                break  # CUDA ignores everything from the first invalid entry on
            chosen.append(handles[int(entry)])
        elif entry.startswith("GPU-"):
            matches = [h for h in handles if _text(nvml.nvmlDeviceGetUUID(h)).startswith(entry)]
            if len(matches) != 1:
                break
            chosen.append(matches[0])
        elif entry.startswith("MIG-"):
            return None  # a MIG slice is not among the devices NVML counts: let torch answer
        else:
            break  # "" or "-1" hides every GPU
    return chosen


def _text(value: str | bytes) -> str:
    # nvidia-ml-py returns str; older pynvml releases returned bytes.
    return value.decode() if isinstance(value, bytes) else value


def _nvml_gpu(nvml: ModuleType, index: int, handle: Any) -> GpuInfo:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        utilization: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except nvml.NVMLError:  # NOT_SUPPORTED on MIG slices and some virtual GPUs
        utilization = None
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    return GpuInfo(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_total_mb=int(memory.total) // MIB,
        memory_used_mb=int(memory.used) // MIB,
        utilization_percent=utilization,
        bf16_supported=(major, minor) >= BF16_MIN_COMPUTE_CAPABILITY,
    )


def _torch_gpus() -> list[GpuInfo]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        gpus.append(
            GpuInfo(
                index=index,
                name=properties.name,
                memory_total_mb=total // MIB,
                memory_used_mb=(total - free) // MIB,
                utilization_percent=None,
                bf16_supported=(properties.major, properties.minor) >= BF16_MIN_COMPUTE_CAPABILITY,
            )
        )
    return gpus


def _cpu_model_name(cpuinfo_path: Path) -> str:
    try:
        text = cpuinfo_path.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        # x86 says "model name"; some Arm kernels only give "Hardware" or "Model".
        if key.strip() in ("model name", "Hardware", "Model") and value.strip():
            return value.strip()
    import platform

    return platform.processor() or platform.machine()

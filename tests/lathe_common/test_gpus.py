"""GPU and CPU discovery.

No GPU can exist on the machines these tests run on (development and CI are CPU-only), so the
no-GPU path is tested for real, and the NVML path by passing list_gpus() a fake ``pynvml``
module that answers as the real one does (same function names, MiB arithmetic on bytes,
NVMLError for what a driver can't tell).
"""

import os
from types import SimpleNamespace

import pytest

from lathe_common.gpus import GpuInfo, cpu_info, device_kind, list_gpus

GIB = 2**30


def _machine_has_gpu() -> bool:
    return os.path.exists("/dev/nvidia0")


class FakeNvml:
    """Stands in for pynvml: devices are dicts, handles their positions."""

    class NVMLError(Exception):
        pass

    def __init__(self, devices, *, driver=True):
        self.devices = devices
        self.driver = driver
        self.initialised = 0

    def nvmlInit(self):
        if not self.driver:
            raise self.NVMLError("Driver Not Loaded")
        self.initialised += 1

    def nvmlShutdown(self):
        self.initialised -= 1

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return self.devices[handle]["name"]

    def nvmlDeviceGetUUID(self, handle):
        return self.devices[handle]["uuid"]

    def nvmlDeviceGetMemoryInfo(self, handle):
        device = self.devices[handle]
        return SimpleNamespace(
            total=device["total"], used=device["used"], free=device["total"] - device["used"]
        )

    def nvmlDeviceGetUtilizationRates(self, handle):
        if self.devices[handle]["utilization"] is None:
            raise self.NVMLError("Not Supported")
        return SimpleNamespace(gpu=self.devices[handle]["utilization"], memory=0)

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return self.devices[handle]["capability"]


H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-1c4d1111-aaaa-bbbb-cccc-000000000001",
    "total": 81559 * 2**20,
    "used": 3 * GIB,
    "utilization": 87,
    "capability": (9, 0),
}
T4 = {
    "name": b"Tesla T4",  # older pynvml releases return bytes
    "uuid": "GPU-7e2a2222-aaaa-bbbb-cccc-000000000002",
    "total": 15360 * 2**20,
    "used": 0,
    "utilization": None,
    "capability": (7, 5),
}


@pytest.fixture(autouse=True)
def _all_devices_visible(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.mark.skipif(_machine_has_gpu(), reason="this machine has a GPU")
def test_it_finds_no_gpu_on_this_machine():
    # pynvml may be installed here: its nvmlInit fails for want of a driver, then torch says no.
    assert list_gpus() == []
    assert device_kind() == "cpu"


def test_it_reads_each_gpu_through_nvml():
    nvml = FakeNvml([H100, T4])

    gpus = list_gpus(nvml=nvml)

    assert gpus == [
        GpuInfo(0, "NVIDIA H100 80GB HBM3", 81559, 3072, 87, bf16_supported=True),
        GpuInfo(1, "Tesla T4", 15360, 0, None, bf16_supported=False),
    ]
    assert round(gpus[0].memory_total_gb, 1) == 79.6
    assert nvml.initialised == 0  # shut down again


def test_it_lists_only_the_gpus_cuda_visible_devices_shows(monkeypatch):
    nvml = FakeNvml([H100, T4])

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [(gpu.index, gpu.name) for gpu in list_gpus(nvml=nvml)] == [(0, "Tesla T4")]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert [gpu.name for gpu in list_gpus(nvml=nvml)] == ["Tesla T4", "NVIDIA H100 80GB HBM3"]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1c4d1111")
    assert [gpu.name for gpu in list_gpus(nvml=nvml)] == ["NVIDIA H100 80GB HBM3"]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,7,1")  # CUDA stops at the invalid 7
    assert [gpu.name for gpu in list_gpus(nvml=nvml)] == ["NVIDIA H100 80GB HBM3"]


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_it_lists_no_gpu_when_cuda_visible_devices_hides_them(monkeypatch, hidden):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)

    assert list_gpus(nvml=FakeNvml([H100])) == []


@pytest.mark.skipif(_machine_has_gpu(), reason="this machine has a GPU")
def test_it_asks_torch_when_nvml_finds_no_driver():
    nvml = FakeNvml([H100], driver=False)

    # torch (CPU build here) finds none either.
    assert list_gpus(nvml=nvml) == []


def test_it_describes_this_machines_cpu():
    info = cpu_info()

    assert 1 <= info["cores"] <= info["logical_cores"]
    assert 0 < info["memory_used_mb"] < info["memory_total_mb"]
    assert info["model_name"]


def test_it_names_the_cpu_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    )

    assert cpu_info(cpuinfo_path=cpuinfo)["model_name"] == "AMD EPYC 9654 96-Core Processor"
    assert cpu_info(cpuinfo_path=tmp_path / "missing")["model_name"]  # falls back to the platform's name

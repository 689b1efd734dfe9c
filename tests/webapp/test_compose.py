import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_it_is_a_valid_compose_file_by_the_specifications_schema():
    checker = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_pins_one_worker_per_gpu_with_a_reservation_and_cuda_visible_devices():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web"} <= services.keys()
    gpu_workers = [name for name in services if name.startswith("worker-gpu")]
    assert len(gpu_workers) >= 2
    device_ids = set()
    for name in gpu_workers:
        service = services[name]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
        device_ids.update(devices[0]["device_ids"])
        assert "CUDA_VISIBLE_DEVICES" in service["environment"]
        assert "--concurrency" in service["command"] and "1" in service["command"]
        assert "healthcheck" in service
    assert len(device_ids) == len(gpu_workers)  # each worker has its own card
    for name in ("postgres", "redis", "web"):
        assert "healthcheck" in services[name]
    assert {"postgres-data", "redis-data", "lathe-data"} <= compose["volumes"].keys()

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


def test_one_gpu_worker_per_machine_sees_every_card_and_starts_a_process_per_job():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web"} <= services.keys()
    worker = services["worker-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["count"] == "all"
    assert "CUDA_VISIBLE_DEVICES" not in worker["environment"]  # the leases choose, per job
    command = worker["command"]
    assert command[command.index("--max-tasks-per-child") + 1] == "1"
    assert worker["build"]["target"] == "gpu" and worker["image"] == "lathe-gpu:latest"
    assert "healthcheck" in worker
    for name in ("postgres", "redis", "web"):
        assert "healthcheck" in services[name]
        assert services[name].get("image") != "lathe-gpu:latest"
    assert {"postgres-data", "redis-data", "lathe-data"} <= compose["volumes"].keys()


def test_both_images_build_from_the_repositorys_own_lock_files():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = [line.split()[-1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert stages == ["base", "gpu", "cpu"]  # cpu last: the default target
    for lock in ("requirements.lock", "requirements-gpu.lock", "requirements-vllm-gpu.lock"):
        assert lock in dockerfile
        pins = [line for line in (REPO / lock).read_text().splitlines() if line and not line.startswith("#")]
        assert pins and all("==" in line for line in pins)  # every package pinned
    gpu_lock = (REPO / "requirements-gpu.lock").read_text()
    assert "\ntorch==2.13.0\n" in gpu_lock and "torch==2.13.0+cpu" not in gpu_lock
    assert "\nvllm==" in (REPO / "requirements-vllm-gpu.lock").read_text()
    assert 'LATHE_VLLM_COMMAND="/opt/vllm/bin/python -m models_app.ml.vllm_entry"' in dockerfile


def test_the_ray_profile_adds_a_head_and_gpu_nodes_sharing_the_data_folder_without_the_sites_secrets():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    head, node = services["ray-head"], services["ray-worker"]
    assert head["profiles"] == node["profiles"] == ["ray"]  # off unless asked for
    assert "--head" in head["command"] and "--num-gpus=0" in head["command"]
    assert node["deploy"]["resources"]["reservations"]["devices"][0]["count"] == "all"
    for ray_node in (head, node):
        assert ray_node["image"] == "lathe-gpu:latest" and "lathe-data:/data" in ray_node["volumes"]
        assert ray_node["environment"]["LATHE_DATA_DIR"] == services["web"]["environment"]["LATHE_DATA_DIR"]
        assert ray_node["environment"]["RAY_AUTH_MODE"] == "token"
        assert not {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} & ray_node["environment"].keys()
    assert "LATHE_RAY_ADDRESS" in services["worker-gpu"]["environment"]

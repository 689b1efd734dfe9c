"""A model process's environment: what says where things are and how to use the hardware, no secret."""

from lathe_common.child_env import child_env

WORKER = {
    "PATH": "/usr/bin",
    "HOME": "/home/lathe",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "CUDA_VISIBLE_DEVICES": "0,1",
    "NVIDIA_VISIBLE_DEVICES": "all",
    "OMP_NUM_THREADS": "8",
    "HF_HOME": "/cache/hf",
    "HF_HUB_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "4",
    "SECRET_KEY": "django",
    "DATABASE_URL": "postgres://u:p@db/lathe",
    "REDIS_URL": "redis://:p@redis/0",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "HF_TOKEN": "hf_x",
    "HUGGING_FACE_HUB_TOKEN": "hf_y",
    "LATHE_S3_BUCKET": "b",
    "DJANGO_SETTINGS_MODULE": "webapp.settings",
}


def test_it_keeps_the_allowlist_and_drops_the_rest():
    env = child_env(source=WORKER)
    assert env == {
        name: WORKER[name]
        for name in (
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "CUDA_VISIBLE_DEVICES",
            "NVIDIA_VISIBLE_DEVICES",
            "OMP_NUM_THREADS",
            "HF_HOME",
            "HF_HUB_OFFLINE",
        )
    }


def test_a_caller_widens_it_for_its_child_and_adds_its_own():
    env = child_env(source=WORKER, prefixes=("VLLM_",), names=("LATHE_S3_BUCKET",), extra={"X": "1"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4" and env["LATHE_S3_BUCKET"] == "b" and env["X"] == "1"
    assert "SECRET_KEY" not in env and "HF_TOKEN" not in env


def test_the_operator_names_more_variables():
    env = child_env(source={**WORKER, "LATHE_CHILD_ENV_ALLOW": " LICENSE_SERVER, ,", "LICENSE_SERVER": "l"})
    assert env["LICENSE_SERVER"] == "l" and "SECRET_KEY" not in env

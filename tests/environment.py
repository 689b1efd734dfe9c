"""The test environment, fixed before Django reads its settings.

Loaded as a pytest plugin (`-p tests.environment` in pyproject.toml), so it runs
before pytest-django imports webapp.settings. Tests get their own data
directory and their own Redis database; where no Redis answers (a fresh laptop)
the embedded one is started for the session.
"""

from __future__ import annotations

import atexit
import os
import secrets
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = REPO / ".data" / "test"

os.environ["LATHE_DATA_DIR"] = str(TEST_DATA_DIR)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One SQLite file per run, so two runs on one machine never share a database.
os.environ["LATHE_TEST_DB_NAME"] = f"test-lathe-{os.getpid()}.sqlite3"
os.environ["LATHE_REDIS_NAMESPACE"] = f"test{os.getpid()}-"
# Fast heartbeats, so a killed worker's job is noticed in seconds, not minutes.
os.environ.setdefault("LATHE_HEARTBEAT_SECONDS", "2")
os.environ.setdefault("LATHE_WORKER_REPORT_SECONDS", "2")
os.environ["LATHE_ALLOWED_HOSTS"] = "localhost,127.0.0.1,testserver"
# The tests' LLM judges (the session's vLLM, small fake servers) listen on 127.0.0.1: the worker may call
# that address, as an admin would allow an inside judge. tests/webapp/test_outbound.py checks the refusals.
os.environ["LATHE_OUTBOUND_ALLOW"] = "127.0.0.1"
# Adapters join their base's server (the session's one vLLM) unless a test asks for the product's default,
# "auto", which gives each adapter a merged copy and server of its own on this CPU machine
# (tests/models_app/test_serving_form.py, tests/models_app/test_merged_copy_serving.py).
os.environ["LATHE_ADAPTER_SERVING"] = "lora"
# Merged copies keep no warm spare (one more vLLM each) unless a test asks for one
# (tests/models_app/test_merged_copy_serving.py).
os.environ["LATHE_WARM_SPARE"] = "false"
# Where a test asks for one, the spare starts beside the session's vLLM and the test's own processes.
os.environ["LATHE_WARM_SPARE_HEADROOM_GIB"] = "0.5"
TEST_DATA_DIR.mkdir(parents=True, exist_ok=True)


def _free_port() -> int:
    from lathe_common.embedded_redis import free_port

    return free_port()


# The session's Ray cluster, started by the tests that need one (tests/ray_fixtures.py), answers here; the
# worker knows the address from its start (its LATHE_RAY_ADDRESS), the test process only inside those tests.
os.environ["LATHE_TEST_RAY_PORT"] = str(_free_port())
# As the README tells administrators: the cluster takes only requests that carry its token (Ray's token
# authentication); the worker, the cluster and the tests' own client read it from the environment.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)


def _resolve_redis() -> str:
    from lathe_common.embedded_redis import redis_answers, start_embedded_redis

    configured = os.environ.get("LATHE_TEST_REDIS_URL")
    if configured:
        return configured
    # Database 15 keeps test queues apart from a developer's running site.
    if redis_answers("redis://127.0.0.1:6379/15"):
        return "redis://127.0.0.1:6379/15"
    process, url = start_embedded_redis(TEST_DATA_DIR / "redis")
    atexit.register(process.terminate)
    return url


os.environ["REDIS_URL"] = _resolve_redis()

# Playwright's sync API runs an event loop in the test thread; the ORM calls the
# tests make around it are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

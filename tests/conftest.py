"""Shared fixtures: users, a real Celery worker, the real ASGI server, a browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from lathe_common.embedded_redis import free_port
from tests import processes
from tests.database_flush import flush_retried_on_clash

pytest_plugins = ["tests.serving_fixtures", "tests.ray_fixtures"]

flush_retried_on_clash()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="bob-password-1")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob):
    from django.test import Client

    other = Client()
    other.force_login(bob)
    return other


@pytest.fixture(scope="session")
def logs_dir():
    # One folder per run: several runs on one machine (two developers, two agents) keep their own logs.
    path = settings.DATA_DIR / "logs" / f"run-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, logs_dir):
    """One real Celery worker process for the session, consuming the test Redis."""
    log_path = logs_dir / "worker.log"
    log_path.write_bytes(b"")
    process = processes.start_worker(log_path)
    processes.wait_for_worker(process, log_path)
    yield process
    # vLLM servers started by serving jobs run in their own process groups: stop any a test left.
    with django_db_blocker.unblock():
        from models_app.endpoints import servers_stop_on_this_machine

        servers_stop_on_this_machine()
    processes.stop(process)
    # This run's queues and channel groups carry its own prefix: drop them.
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match=f"*{settings.LATHE_REDIS_NAMESPACE}*"):
        client.delete(key)


@pytest.fixture(scope="session")
def live_site(django_db_setup, celery_worker, logs_dir):
    """The site served by uvicorn (HTTP and websockets) on the test database."""
    port = free_port()
    log_path = logs_dir / "web.log"
    log_path.write_bytes(b"")
    process = processes.start_server(port, log_path)
    yield f"http://127.0.0.1:{port}"
    processes.stop(process)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium driven by Playwright (never `playwright install`).

    Module scope: Playwright's sync API keeps an event loop running in the
    test thread while it is open, which async tests of other modules can't share.
    """
    import os

    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            "Browser tests need Debian's Chromium at /usr/bin/chromium: run `make test` (it installs it)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture
def demo_base_model(demo_model_dir, transactional_db):
    """The demo model registered for every user, as `make dev` does."""
    from models_app.ml.demo_model import DEMO_MODEL_ID
    from models_app.models import BaseModel

    model, _ = BaseModel.objects.update_or_create(
        owner=None,
        hf_id=DEMO_MODEL_ID,
        defaults={"display_name": "SmolLM2 135M (demo)", "local_dir": str(demo_model_dir), "is_demo": True},
    )
    return model


# --- Demo model and its tokenizer --------------------------------------------
# Plain Python, no database: used by the Django-free core tests in
# tests/datasets_app/test_cleaning_*.py, test_stats.py, test_tokens.py and
# tests/models_app/test_demo_model.py. The conversion (about 20 s) is kept in
# .data/test-cache across runs; delete that folder to redo it.
DEMO_MODEL_CACHE = Path(__file__).resolve().parent.parent / ".data" / "test-cache" / "demo-model"


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    from models_app.ml.demo_model import ensure_demo_model

    return ensure_demo_model(DEMO_MODEL_CACHE)


@pytest.fixture(scope="session")
def demo_token_counter(demo_model_dir):
    from datasets_app.core.tokens import HfTokenCounter

    return HfTokenCounter.from_dir(demo_model_dir)


# --- A tiny Qwen2 model -------------------------------------------------------
# Random weights (2 layers, hidden size 64) with the demo model's tokenizer:
# training tests check the plumbing (events, masks, checkpoints, adapters), and
# a step takes a fraction of a second on two CPU cores. Built once per session.
@pytest.fixture(scope="session")
def tiny_model_dir(demo_model_dir, tmp_path_factory) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    target = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir, local_files_only=True)
    config = Qwen2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


# --- The PostgreSQL pass of CI --------------------------------------------------
# CI runs the whole suite on SQLite, then again on PostgreSQL (.ci/run). With LATHE_TEST_DATABASE_ONLY set,
# the second pass runs only the tests that touch the database: the others (models, trainers, converters,
# cleaning rules on files) would only repeat the first pass's work, minutes of it. It also leaves out the
# tests marked `ml_heavy`: their minutes go to training, vLLM or Ray, and what they ask of the database
# (jobs, endpoints, events) the lighter tests of the same rows ask on PostgreSQL too.
_DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}


def _uses_database(item: pytest.Item) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(
        _DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("LATHE_TEST_DATABASE_ONLY"):
        return

    def kept(item: pytest.Item) -> bool:
        return _uses_database(item) and item.get_closest_marker("ml_heavy") is None

    config.hook.pytest_deselected(items=[item for item in items if not kept(item)])
    items[:] = [item for item in items if kept(item)]

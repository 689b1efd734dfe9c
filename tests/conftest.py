"""Shared fixtures: users, a real Celery worker, the real ASGI server, a browser."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from tests import processes
from webapp.embedded_redis import free_port


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
    path = settings.DATA_DIR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, logs_dir):
    """One real Celery worker process for the session, consuming the test Redis."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # stale messages from an earlier run
    log_path = logs_dir / "worker.log"
    log_path.write_bytes(b"")
    process = processes.start_worker(log_path)
    processes.wait_for_worker(process, log_path)
    yield process
    processes.stop(process)


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
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (never `playwright install`)."""
    import os

    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Browser tests need Debian's Chromium at /usr/bin/chromium: run `make test` (it installs it).")
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
def demo_base_model(demo_model_dir, db):
    """The demo model registered for every user, as `make dev` does."""
    from models_app.ml.demo_model import DEMO_MODEL_ID
    from models_app.models import BaseModel

    model, _ = BaseModel.objects.update_or_create(
        owner=None,
        hf_id=DEMO_MODEL_ID,
        defaults={"display_name": "SmolLM2 135M (demo)", "local_dir": str(demo_model_dir), "is_demo": True},
    )
    return model

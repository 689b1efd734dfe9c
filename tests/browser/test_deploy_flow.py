"""Deploy for real: a click starts vLLM through the serving job, the playground chats with it,
a crashed server comes back, and Undeploy frees it. The one test that pays for a vLLM start."""

import os
import re
import signal

import pytest

from models_app.ml.vllm_server import pid_alive, vllm_stop
from models_app.models import Endpoint, ModelServer, ServerState
from tests.browser.session import log_in
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.ml_heavy,
]

VLLM_START_TIMEOUT = 400  # vLLM took 50-85 s to start here, more while other tests load the cores


def _server(endpoint_id: int) -> ModelServer:
    return Endpoint.objects.select_related("server").get(pk=endpoint_id).server


@pytest.fixture
def stop_leftover_servers():
    """vLLM runs in its own process group: whatever this test leaves running is stopped."""
    yield
    for pid in ModelServer.objects.exclude(pid=None).values_list("pid", flat=True):
        vllm_stop(pid, grace_seconds=5)


def test_it_deploys_chats_in_the_playground_survives_a_crash_and_undeploys(
    live_site, browser_page, alice, make_adapter, stop_leftover_servers
):
    adapter = make_adapter(alice)
    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/models/")

    page.click(f"#adapter-{adapter.pk} .deploy-button")
    page.wait_for_url(re.compile(r"/models/endpoints/\d+/$"))
    endpoint_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert page.text_content("[data-role=endpoint-state]").strip() == "Starting"
    page.wait_for_selector("[data-role=endpoint-state]:text('Ready')", timeout=VLLM_START_TIMEOUT * 1000)
    assert "ft:HuggingFaceTB/SmolLM2-135M-Instruct:demo:" in page.text_content("#example-python")
    assert page.locator(".job-watch .log li").count() > 10  # vLLM's start-up log, streamed

    page.click("[data-role=playground-link]")
    page.fill("#prompt", "What is 7 plus 7?")
    page.click("#playground button[type=submit]")
    tuned = page.locator("[data-side=tuned] .msg-assistant[data-done='1']")
    base = page.locator("[data-side=base] .msg-assistant[data-done='1']")
    tuned.wait_for(timeout=120_000)
    base.wait_for(timeout=120_000)
    assert "Lathe" in tuned.text_content()  # what the adapter was trained to say
    assert tuned.text_content() != base.text_content()

    server = _server(endpoint_id)
    assert server.managed and pid_alive(server.pid)
    os.killpg(server.pid, signal.SIGKILL)
    wait_until(
        lambda: (
            _server(endpoint_id).restarts == 1
            and Endpoint.objects.get(pk=endpoint_id).state == ServerState.READY
        ),
        timeout=VLLM_START_TIMEOUT,
        interval=1,
        message="the crashed vLLM server to be restarted with its adapter",
    )
    restarted = _server(endpoint_id)
    assert restarted.pid != server.pid

    page.goto(f"{live_site}/models/endpoints/{endpoint_id}/")
    page.click("button:text('Undeploy')")
    wait_until(lambda: not pid_alive(restarted.pid), timeout=60, message="vLLM to stop")
    assert _server(endpoint_id).state == ServerState.STOPPED
    assert Endpoint.objects.get(pk=endpoint_id).state == ServerState.STOPPED

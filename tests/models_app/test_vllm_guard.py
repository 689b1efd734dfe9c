"""A Lathe-started vLLM answers nobody without its secret, and its key holder only on Lathe's routes."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from models_app.ml.vllm_guard import ALLOWED_ROUTES, VllmGuard
from models_app.ml.vllm_server import VllmLaunch

SECRET = "the-server-secret"
CHAT = {
    "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "messages": [{"role": "user", "content": "What is 7 plus 7?"}],
    "max_tokens": 8,
    "temperature": 0,
}

# Every route of vLLM's app as `vllm_entry` builds it (the same builder, the server's flags and
# environment), listed by vLLM itself so that a route added by a later version is covered too.
LIST_ROUTES = """
import json, sys
from vllm.entrypoints.launchers.app import build_app
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
args = make_arg_parser(FlexibleArgumentParser()).parse_args(sys.argv[1:])
routes = []
for route in build_app(args, ("generate",), None).routes:
    for method in sorted(getattr(route, "methods", None) or {"GET", "POST"}):
        routes.append([method, route.path])
print("ROUTES=" + json.dumps(routes))
"""


def vllm_routes(model_dir: Path) -> list[tuple[str, str]]:
    launch = VllmLaunch(model_dir=model_dir, served_name="m", port=1, api_key=SECRET)
    flags = launch.argv()[len(shlex.split(launch.command)) :]  # vLLM's flags, after the command
    done = subprocess.run(
        [sys.executable, "-c", LIST_ROUTES, *flags],
        env=launch.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("ROUTES="))
    return [(method, path) for method, path in json.loads(line.removeprefix("ROUTES="))]


def concrete(path: str) -> str:
    """A path a request can name: `{response_id}` becomes `x`."""
    parts = ["x" if part.startswith("{") else part for part in path.split("/")]
    return "/".join(parts) or "/"


@pytest.fixture(scope="module")
def routes(demo_model_dir) -> list[tuple[str, str]]:
    listed = vllm_routes(demo_model_dir)
    # What vLLM's own --api-key left open: they must be among the routes checked.
    assert {("POST", "/invocations"), ("GET", "/metrics"), ("POST", "/tokenize")} <= set(listed)
    assert ("POST", "/v1/load_lora_adapter") in listed  # the server's runtime LoRA routes are listed
    return listed


def test_it_answers_no_route_without_the_secret(vllm_server, routes):
    """Each route of the running server, with no key and with a wrong one: 401, never an answer."""
    with httpx.Client(base_url=vllm_server.base_url, timeout=30) as client:
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer not-the-secret"}, {"Authorization": SECRET}):
                response = client.request(method, concrete(path), headers=headers, json=CHAT)
                assert response.status_code == 401, (method, path, headers, response.text[:200])
                assert "choices" not in response.text
        # vLLM's own key check is bypassed by these spellings of a path; the guard's is not.
        for path in ("/invocations", "/ping", "/v1/../invocations", "//v1/chat/completions"):
            assert client.post(path, json=CHAT).status_code in (401, 404)


def test_it_answers_the_key_holder_only_on_lathes_routes(vllm_server, routes):
    headers = {"Authorization": f"Bearer {vllm_server.secret}"}
    with httpx.Client(base_url=vllm_server.base_url, headers=headers, timeout=120) as client:
        for method, path in routes:
            if (method, path) in ALLOWED_ROUTES:
                continue
            response = client.request(method, concrete(path), json=CHAT)
            assert response.status_code == 404, (method, path, response.text[:200])
            assert "choices" not in response.text

        assert client.get("/health").status_code == 200
        assert CHAT["model"] in {model["id"] for model in client.get("/v1/models").json()["data"]}
        answer = client.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
        completion = client.post(
            "/v1/completions", json={"model": CHAT["model"], "prompt": "Hi", "max_tokens": 4}
        )
        assert completion.status_code == 200 and completion.json()["choices"][0]["text"]


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (vLLM's engine core and its workers)."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").iterdir():
            children = (task / "children").read_text().split()
            tree += [int(child) for child in children]
        index += 1
    return tree


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode("utf-8", "replace").split("\0") if "=" in entry)


def test_the_session_server_runs_without_the_workers_secrets(vllm_server):
    """The test process holds Django's, Redis' and Lathe's settings (tests/environment.py); vLLM none."""
    tree = process_tree(vllm_server.pid)
    assert len(tree) >= 2  # the API server and at least its engine core
    for pid in tree:
        names = set(environment_of(pid))
        assert not names & {"REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL"}, pid
        assert not [name for name in names if name.startswith(("LATHE_", "AWS_", "HF_TOKEN"))], pid
    assert environment_of(vllm_server.pid)["VLLM_API_KEY"] == vllm_server.secret


# The guard on its own, around a stand-in app that answers every route it is given.


async def answered(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"answered"})


def request(method: str, path: str, headers: dict | None = None, content: bytes = b"") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=VllmGuard(answered, secret=SECRET))
        async with httpx.AsyncClient(transport=transport, base_url="http://vllm") as client:
            return await client.request(method, path, headers=headers or {}, content=content)

    return asyncio.run(go())


def test_the_guard_compares_the_whole_bearer_secret():
    bearer = {"Authorization": f"Bearer {SECRET}"}
    assert request("GET", "/health").status_code == 401
    assert request("GET", "/health", {"Authorization": f"Bearer {SECRET}x"}).status_code == 401
    assert request("GET", "/health", {"Authorization": f"Bearer {SECRET[:-1]}"}).status_code == 401
    assert request("GET", "/health", {"Authorization": f"Basic {SECRET}"}).status_code == 401
    assert request("GET", "/health", {"Authorization": f"bearer {SECRET}"}).text == "answered"
    assert request("GET", "/health", bearer).text == "answered"
    for method, path in ALLOWED_ROUTES:
        assert request(method, path, bearer).text == "answered"
    assert request("POST", "/health", bearer).status_code == 404  # the method counts too
    assert request("GET", "/v1/models/", bearer).status_code == 404


def test_the_guard_refuses_to_start_without_a_secret(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="VLLM_API_KEY"):
        VllmGuard(answered)


def test_the_weight_swap_is_the_key_holders_only_and_reads_a_small_body():
    """The guard's own route (a warm spare taking an adapter's weights): 401 without the secret, 400 for
    a body that is not the two names, 413 past its small limit, never passed on to vLLM's routes. Its
    effect on a running vLLM is tested in tests/models_app/test_merged_copy_serving.py."""
    body = json.dumps({"weights_path": "copy", "served_name": "ft:x"}).encode()
    assert request("POST", "/lathe/swap_weights", content=body).status_code == 401
    bearer = {"Authorization": f"Bearer {SECRET}"}
    assert request("GET", "/lathe/swap_weights", bearer).status_code == 404
    for bad in (b"", b"[]", b'{"weights_path": "copy"}', b'{"weights_path": 1, "served_name": "x"}', b"{"):
        response = request("POST", "/lathe/swap_weights", bearer, content=bad)
        assert response.status_code == 400 and "weights_path" in response.text, bad
    response = request("POST", "/lathe/swap_weights", bearer, content=b" " * (64 * 1024))
    assert response.status_code == 413 and response.text != "answered"

"""The door of every vLLM server Lathe starts: its secret on every request, and only the routes Lathe uses.

vLLM's own `--api-key` guards the paths under /v1, /v2, /inference and /cohere only: /invocations
(SageMaker's route to the same completions), /tokenize, /metrics, /ping and the rest answered anyone
who could reach the port, including another user's evaluation judge pointed at it. vLLM loads this
class by import path (`--middleware models_app.ml.vllm_guard.VllmGuard`, added by VllmLaunch) in each
process that serves HTTP, outside its own middleware, so no request reaches a route before this:

- a request without `Authorization: Bearer <the server's secret>` is answered 401, whatever its path
  (the secret is VLLM_API_KEY, which VllmLaunch sets and vLLM checks too);
- a request with it, to a route neither the gateway nor Lathe's control client (VllmClient) uses, is
  answered 404: the key holder is Lathe, and Lathe has no business there;
- `POST /lathe/swap_weights` (with the secret) is the guard's own: a warm spare takes a merged copy's
  weights and name (models_app/ml/patches/vllm.swap_weights).

Nothing here imports Django or vLLM; it is plain ASGI.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

SECRET_ENV = "VLLM_API_KEY"  # noqa: S105 (the name of the variable, not a secret)
# The (method, path) pairs Lathe calls: VllmClient's health, model list and adapter loading; the
# gateway's and evaluations' completions.
ALLOWED_ROUTES = frozenset(
    {
        ("GET", "/health"),
        ("GET", "/v1/models"),
        ("POST", "/v1/load_lora_adapter"),
        ("POST", "/v1/unload_lora_adapter"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
    }
)
SWAP_ROUTE = ("POST", "/lathe/swap_weights")
SWAP_BODY_LIMIT = 16 * 1024  # a folder and a name
# A WebSocket handshake refused before it is accepted: "policy violation".
WEBSOCKET_POLICY_VIOLATION = 1008


def _digest(value: str) -> bytes:
    # Comparing digests keeps the comparison constant-time whatever the length of what was sent.
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class VllmGuard:
    def __init__(self, app, secret: str | None = None) -> None:
        secret = os.environ.get(SECRET_ENV, "") if secret is None else secret
        if not secret:
            # Failing closed: a server Lathe cannot protect must not start at all.
            raise RuntimeError(f"{SECRET_ENV} is empty: Lathe's vLLM guard refuses to serve without it.")
        self.app = app
        self._secret_digest = _digest(secret)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            status = self._refusal(scope)
            if status is not None:
                await _send_error(send, status)
            elif (scope.get("method"), scope.get("path")) == SWAP_ROUTE:
                await _swap(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # the handshake; Lathe uses no WebSocket route of vLLM
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
        else:  # lifespan: vLLM's own start-up and shutdown
            await self.app(scope, receive, send)

    def _refusal(self, scope) -> int | None:
        if not self._holds_secret(scope):
            return 401
        if (scope.get("method"), scope.get("path")) not in ALLOWED_ROUTES | {SWAP_ROUTE}:
            return 404
        return None

    def _holds_secret(self, scope) -> bool:
        authorization = ""
        for name, value in scope.get("headers") or ():
            if name.lower() == b"authorization":
                authorization = value.decode("latin-1")
                break
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(_digest(token.strip()), self._secret_digest)


_MESSAGES = {
    400: "Send a JSON object with weights_path and served_name (strings).",
    401: "This model server answers Lathe only. Send requests to Lathe's /v1 gateway with your API key.",
    404: "Not found.",
    413: "Too large.",
}


async def _read_body(receive, limit: int) -> bytes | None:
    """The request's body, or None past `limit` bytes."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return body


async def _swap(scope, receive, send) -> None:
    body = await _read_body(receive, SWAP_BODY_LIMIT)
    if body is None:
        await _send_error(send, 413)
        return
    try:
        request = json.loads(body)
        weights_path, served_name = request["weights_path"], request["served_name"]
    except (ValueError, TypeError, KeyError):
        weights_path = served_name = None
    if not (isinstance(weights_path, str) and isinstance(served_name, str) and weights_path and served_name):
        await _send_error(send, 400)
        return
    from models_app.ml.patches.vllm import swap_weights  # vLLM's internals, version-checked there

    await swap_weights(scope["app"].state, weights_path=weights_path, served_name=served_name)
    await _send_json(send, 200, {"served_name": served_name})


async def _send_error(send, status: int) -> None:
    await _send_json(send, status, {"error": {"message": _MESSAGES[status], "code": status}})


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""A stand-in LLM judge: a real HTTP server on 127.0.0.1 that grades every answer 8 out of 10, and, asked
which of two answers is better, prefers the one that says what the reference says."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PAIR = re.compile(r"Reference answer:\n(.*)\n\nAnswer A:\n(.*)\n\nAnswer B:\n(.*)", re.DOTALL)


def pair_reply(user_content: str, *, first_always: bool) -> str:
    """The answer that is the reference wins; both or neither: a tie. `first_always`: a judge that
    always picks answer A, whatever it reads (position bias at its worst)."""
    if first_always:
        return '{"winner": "A", "reason": "A reads better."}'
    reference, first, second = (part.strip() for part in _PAIR.search(user_content).groups())
    if (first == reference) == (second == reference):
        return '{"winner": "tie", "reason": "Both alike."}'
    winner = "A" if first == reference else "B"
    return json.dumps({"winner": winner, "reason": f"{winner} matches the reference."})


class FakeJudge:
    """A judge on 127.0.0.1 that waits `delay` seconds, then grades every answer 8 (or picks the better of
    two, see pair_reply); counts what it is sent."""

    def __init__(self, delay: float = 0.0, *, first_always: bool = False) -> None:
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"body": body, "authorization": self.headers.get("Authorization")})
                time.sleep(delay)
                system, user = (message["content"] for message in body["messages"])
                content = '{"score": 8, "reason": "Fine."}'
                if system.startswith("You compare two answers"):
                    content = pair_reply(user, first_always=first_always)
                reply = {"message": {"content": content}, "finish_reason": "stop"}
                payload = json.dumps({"choices": [reply], "usage": {}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

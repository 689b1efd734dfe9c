"""A raw HTTP/1.1 client that streams a chunked body until the server answers: how much did it take?"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

CHUNK = 64 * 1024


@dataclass
class BodyOutcome:
    status: int | None
    body: bytes
    sent: int  # body bytes the client managed to hand to the connection before the answer


def _answer_ready(sock: socket.socket, timeout: float = 0.0) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def _read_answer(sock: socket.socket, deadline: float) -> tuple[int | None, bytes]:
    data = b""
    while time.monotonic() < deadline:
        if not _answer_ready(sock, 0.5):
            if b"\r\n\r\n" in data:
                break
            continue
        try:
            part = sock.recv(65536)
        except (ConnectionResetError, OSError):
            break
        if not part:
            break
        data += part
        head, _, rest = data.partition(b"\r\n\r\n")
        lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        length = int(lengths[0].split(b":", 1)[1]) if lengths else None
        if length is not None and len(rest) >= length:
            break
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    return int(data[9:12]), data.partition(b"\r\n\r\n")[2]


def stream_body(
    url: str,
    *,
    method: str = "POST",
    path: str,
    headers: dict[str, str] | None = None,
    total: int = 96 * 1024**2,
    chunked: bool = True,
    timeout: float = 60.0,
) -> BodyOutcome:
    """Send up to `total` body bytes (chunked, or with a Content-Length of `total`) and stop at the answer."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    # Small buffers on our side, so `sent` is close to what the server really took in.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    deadline = time.monotonic() + timeout
    sent = 0
    payload = b"x" * CHUNK
    try:
        while sent < total and time.monotonic() < deadline:
            if _answer_ready(sock):
                break
            frame = f"{CHUNK:x}\r\n".encode() + payload + b"\r\n" if chunked else payload
            sock.sendall(frame)
            sent += CHUNK
        else:
            if chunked and sent >= total:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, body = _read_answer(sock, deadline)
    sock.close()
    return BodyOutcome(status=status, body=body, sent=sent)

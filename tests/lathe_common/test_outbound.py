"""Requests to user-given addresses: nothing inside the server's network, whatever the spelling.

Real HTTP servers on 127.0.0.1 stand in for a judge (allowed through LATHE_OUTBOUND_ALLOW where a test
needs to reach them); public addresses are only checked, never connected to.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from lathe_common.outbound import (
    INSIDE_MESSAGE,
    OutboundPolicy,
    OutboundRedirect,
    OutboundRefused,
    OutboundTimeout,
    OutboundTooLarge,
    check_url,
    join_url,
    outbound_policy,
    outbound_request,
    resolve_target,
)

STRICT = OutboundPolicy()
LOOPBACK_ALLOWED = OutboundPolicy(allow=("127.0.0.1",), timeout_seconds=5)

INSIDE_URLS = [
    "http://127.0.0.1/v1",
    "http://127.0.0.1:8000/v1",
    "http://127.2.3.4/",
    "http://[::1]:8000/v1",
    "http://2130706433/v1",  # decimal
    "http://017700000001/",  # octal, one number
    "http://0177.0.0.1/",  # octal
    "http://0x7f.1/",  # hex, short
    "http://0x7F000001/",  # hex, one number, upper case
    "http://127.1/",  # short form
    "http://127.0.0.1./",  # trailing dot
    "http://LOCALHOST/",
    "http://localhost./",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/",  # CGNAT
    "http://224.0.0.1/",  # multicast
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",  # zone id
    "http://[fc00::1]/",  # unique local
    "http://[fd12:3456::1]/",
    "http://[ff02::1]/",  # multicast
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "https://192.168.0.10:8443/v1",
]


@pytest.mark.parametrize("url", INSIDE_URLS)
def test_it_refuses_every_spelling_of_an_inside_address(url):
    with pytest.raises(OutboundRefused) as refused:
        check_url(url, STRICT)

    assert refused.value.message == INSIDE_MESSAGE
    assert "LATHE_OUTBOUND_ALLOW" in refused.value.message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://8.8.8.8/v1", "https://"),
        ("file:///etc/passwd", "https://"),
        ("gopher://8.8.8.8/", "https://"),
        ("http://user:secret@8.8.8.8/v1", "user name or password"),
        ("http://8.8.8.8@127.0.0.1/v1", "user name or password"),
        ("http://8.8.8.8/v1?x=", "without “?” or “#”"),
        ("http://8.8.8.8/v1#/admin", "without “?” or “#”"),
        ("http:///v1", "no server name"),
        ("http://8.8.8.8:99999/v1", "not a valid web address"),
        ("http://8.8.8.8/v 1", "spaces"),
        ("", "https://"),
    ],
)
def test_it_refuses_a_malformed_address_and_says_what_is_wrong(url, words):
    with pytest.raises(OutboundRefused, match=re.escape(words)):
        check_url(url, STRICT)


def test_it_accepts_public_addresses_without_connecting():
    assert resolve_target("https://8.8.8.8/v1", STRICT).address == "8.8.8.8"
    target = resolve_target("http://[2001:4860:4860::8888]:8080/v1/", STRICT)
    assert (target.address, target.port, target.path) == ("2001:4860:4860::8888", 8080, "/v1/")


def test_it_refuses_a_name_that_resolves_inside(monkeypatch):
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "judge.example":
            return real("127.0.0.1", *args, **kwargs)
        if host == "mixed.example":  # one public answer does not excuse an inside one
            return real("8.8.8.8", *args, **kwargs) + real("10.0.0.7", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)

    for url in ("https://judge.example/v1", "https://mixed.example/v1", "http://localhost:8000/v1"):
        with pytest.raises(OutboundRefused, match="inside the server's own network"):
            check_url(url, STRICT)
        # ...and at call time, before anything is sent.
        with pytest.raises(OutboundRefused, match="inside the server's own network"):
            outbound_request("POST", url, policy=STRICT, json={})


def test_it_refuses_a_name_that_does_not_resolve():
    with pytest.raises(OutboundRefused, match="could not find the server"):
        check_url("https://no-such-host.invalid/v1", STRICT)


def test_it_joins_paths_under_the_base_path_and_drops_any_query():
    assert join_url("https://api.example.com/v1", "chat/completions") == (
        "https://api.example.com/v1/chat/completions"
    )
    assert join_url("https://api.example.com/v1/", "/chat/completions") == (
        "https://api.example.com/v1/chat/completions"
    )
    assert join_url("https://api.example.com/v1?x=", "chat/completions") == (
        "https://api.example.com/v1/chat/completions"
    )


# --- Real requests to servers on 127.0.0.1 -----------------------------------------------------------


@contextmanager
def http_server(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[tuple[int, list]]:
    """A server on 127.0.0.1 that answers every request with `answer(handler)`; yields (port, requests)."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle()

        def do_POST(self) -> None:  # noqa: N802
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            requests.append(
                {"path": self.path, "host": self.headers.get("Host"), "body": self.rfile.read(length)}
            )
            try:
                answer(self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()


def _json_answer(handler: BaseHTTPRequestHandler) -> None:
    body = b'{"ok": true}'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_it_calls_a_host_the_admin_allowed():
    with http_server(_json_answer) as (port, requests):
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        with override_settings(LATHE_OUTBOUND_ALLOW=[]), pytest.raises(OutboundRefused):
            outbound_request("POST", url, policy=outbound_policy(), json={"a": 1})
        assert requests == []

        with override_settings(LATHE_OUTBOUND_ALLOW=["127.0.0.1"]):
            response = outbound_request("POST", url, policy=outbound_policy(), json={"a": 1})

    assert response.status_code == 200 and response.json() == {"ok": True}
    assert requests[0]["path"] == "/v1/chat/completions" and requests[0]["body"] == b'{"a":1}'


def test_it_connects_to_the_address_it_checked_and_keeps_the_name(monkeypatch):
    """A second DNS answer (rebinding to another address) is never asked for: one resolution a request."""
    real, calls = socket.getaddrinfo, []

    def rebinding(host, *args, **kwargs):
        if host == "judge.example":
            calls.append(host)
            return real("127.0.0.1" if len(calls) == 1 else "10.9.9.9", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with http_server(_json_answer) as (port, requests):
        response = outbound_request(
            "POST", f"http://judge.example:{port}/v1", policy=OutboundPolicy(allow=("127.0.0.0/8",)), json={}
        )

    assert response.status_code == 200
    assert calls == ["judge.example"]
    assert requests[0]["host"] == f"judge.example:{port}"


def test_it_does_not_follow_a_redirect_into_the_network():
    with http_server(_json_answer) as (inside_port, inside_requests):

        def redirect(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(302)
            handler.send_header("Location", f"http://127.0.0.1:{inside_port}/secret")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with http_server(redirect) as (port, _):
            with pytest.raises(OutboundRedirect, match="does not follow redirects"):
                outbound_request("POST", f"http://127.0.0.1:{port}/v1", policy=LOOPBACK_ALLOWED, json={})

    assert inside_requests == []


def test_it_stops_a_server_that_trickles_its_answer_at_the_time_limit():
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):  # one byte every 0.1 s: every read is quick, the whole is not
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.1)

    policy = OutboundPolicy(allow=("127.0.0.1",), timeout_seconds=1.5)
    with http_server(trickle) as (port, _):
        started = time.monotonic()
        with pytest.raises(OutboundTimeout, match="LATHE_OUTBOUND_TIMEOUT"):
            outbound_request("GET", f"http://127.0.0.1:{port}/", policy=policy)
        assert time.monotonic() - started < 3


def test_it_stops_reading_an_answer_larger_than_the_limit():
    def flood(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(8 * 1024**2))
        handler.end_headers()
        for _ in range(128):
            handler.wfile.write(b"x" * 65536)

    policy = OutboundPolicy(allow=("127.0.0.1",), max_bytes=1024**2)
    with http_server(flood) as (port, _):
        with pytest.raises(OutboundTooLarge, match="LATHE_OUTBOUND_MAX_BYTES"):
            outbound_request("GET", f"http://127.0.0.1:{port}/", policy=policy)


# --- Property: every spelling of an inside IPv4 address is refused; public ones pass -------------------

INSIDE_NETWORKS = [
    ipaddress.IPv4Network(network)
    for network in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "224.0.0.0/4",
    )
]


@st.composite
def inside_addresses(draw) -> int:
    network = draw(st.sampled_from(INSIDE_NETWORKS))
    return int(network.network_address) + draw(st.integers(0, network.num_addresses - 1))


@st.composite
def spellings(draw, number: int) -> str:
    """One of the ways the OS reads an IPv4 address: dotted, one number, octal, hex, short forms."""
    octets = number.to_bytes(4, "big")
    style = draw(
        st.sampled_from(["dotted", "decimal", "octal", "hex", "hex_dotted", "short2", "short3", "mapped"])
    )
    if style == "dotted":
        text = ".".join(str(octet) for octet in octets)
    elif style == "decimal":
        text = str(number)
    elif style == "octal":
        text = ".".join(f"0{octet:o}" for octet in octets)
    elif style == "hex":
        text = f"0x{number:x}"
    elif style == "hex_dotted":
        text = ".".join(f"0x{octet:02x}" for octet in octets)
    elif style == "short2":  # a.b, b holding the last 24 bits
        text = f"{octets[0]}.{number & 0xFFFFFF}"
    elif style == "short3":  # a.b.c, c holding the last 16 bits
        text = f"{octets[0]}.{octets[1]}.{number & 0xFFFF}"
    else:
        return f"[::ffff:{ipaddress.IPv4Address(number)}]"
    if draw(st.booleans()):
        text = text.upper()
    if draw(st.booleans()):
        text += "."
    return text


@settings(max_examples=300, deadline=None)
@given(data=st.data(), number=inside_addresses())
def test_property_every_spelling_of_an_inside_ipv4_address_is_refused(data, number):
    host = data.draw(spellings(number))
    port = data.draw(st.sampled_from(["", ":80", ":8000"]))
    with pytest.raises(OutboundRefused):
        check_url(f"http://{host}{port}/v1", STRICT)


@settings(max_examples=100, deadline=None)
@given(last=st.integers(0, 255), mapped=st.booleans(), path=st.sampled_from(["", "/", "/v1", "/openai/v1/"]))
def test_property_public_addresses_pass(last, mapped, path):
    address = f"8.8.8.{last}"
    host = f"[::ffff:{address}]" if mapped else address
    target = resolve_target(f"https://{host}{path}", STRICT)
    assert ipaddress.ip_address(target.address) in (
        ipaddress.ip_address(address),
        ipaddress.ip_address(f"::ffff:{address}"),
    )

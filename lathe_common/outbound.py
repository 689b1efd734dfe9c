"""Requests to addresses that users choose (an LLM judge today): never into the server's own network.

Every such request goes through this module. The URL must be plain http(s) with no user name, query or
fragment; its host is resolved once, every address it resolves to must be public (or allowed by an
admin in LATHE_OUTBOUND_ALLOW), and the connection is made to the address that was checked, with the
name kept in the Host header and TLS SNI (so a DNS answer that changes between check and connect,
"DNS rebinding", changes nothing). Redirects are not followed, and a whole request, body included, has
one time limit and one size limit.

Resolution goes through socket.getaddrinfo, so every spelling the OS accepts (2130706433, 0177.0.0.1,
0x7f.1, 127.1, ::ffff:127.0.0.1, ...) is judged by the address it really means.

Knows nothing of Django: the policy is a value; `outbound_policy()` builds it from the settings.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit, urlunsplit

import httpx

Address = IPv4Address | IPv6Address

INSIDE_MESSAGE = (
    "This address points inside the server's own network, which Lathe does not call. Use the judge's "
    "public address, or ask your administrator to allow it with LATHE_OUTBOUND_ALLOW."
)
DEFAULT_PORTS = {"http": 80, "https": 443}
CONNECT_TIMEOUT_SECONDS = 10.0

_CGNAT = IPv4Network("100.64.0.0/10")
# IPv6 forms that carry an IPv4 address: judged by the IPv4 address they reach.
_IPV4_COMPATIBLE = IPv6Network("::/96")  # deprecated; also holds :: and ::1
_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")


class OutboundError(Exception):
    """A request to a user's address that did not happen or did not finish; `message` is for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutboundRefused(OutboundError):
    """Nothing was sent: the address is malformed, cannot be found, or lies inside the network."""


class OutboundRedirect(OutboundError):
    """The server answered with a redirect, which is not followed."""


class OutboundTimeout(OutboundError):
    """The request, body included, took longer than the policy's time limit."""


class OutboundTooLarge(OutboundError):
    """The answer was larger than the policy's size limit."""


@dataclass(frozen=True)
class OutboundPolicy:
    """Which inside addresses an admin allows, and how long and how large one request may be."""

    allow: tuple[str, ...] = ()
    timeout_seconds: float = 60.0
    max_bytes: int = 4 * 1024**2
    _allowed_hosts: frozenset[str] = field(init=False, repr=False)
    _allowed_networks: tuple[IPv4Network | IPv6Network, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hosts, networks = set(), []
        for entry in self.allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(_normal_host(entry))
        object.__setattr__(self, "_allowed_hosts", frozenset(hosts))
        object.__setattr__(self, "_allowed_networks", tuple(networks))

    def allows_host(self, host: str) -> bool:
        return _normal_host(host) in self._allowed_hosts

    def allows_address(self, address: Address) -> bool:
        candidates = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped:
            candidates.append(address.ipv4_mapped)
        return any(
            candidate in network
            for candidate in candidates
            for network in self._allowed_networks
            if candidate.version == network.version
        )


def outbound_policy() -> OutboundPolicy:
    """The site's policy, from LATHE_OUTBOUND_ALLOW, LATHE_OUTBOUND_TIMEOUT and LATHE_OUTBOUND_MAX_BYTES."""
    from django.conf import settings

    return OutboundPolicy(
        allow=tuple(settings.LATHE_OUTBOUND_ALLOW),
        timeout_seconds=float(settings.LATHE_OUTBOUND_TIMEOUT),
        max_bytes=int(settings.LATHE_OUTBOUND_MAX_BYTES),
    )


# --- Addresses --------------------------------------------------------------------------------------


def address_problem(address: Address) -> str | None:
    """Why Lathe must not connect to this address (a short word for logs), or None for a public one."""
    if isinstance(address, IPv6Address):
        if address.scope_id:
            return "scoped"
        if address.ipv4_mapped is not None:
            return address_problem(address.ipv4_mapped)
        if address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL:
            return "reserved"
        if address.sixtofour is not None:
            return address_problem(address.sixtofour) or _general_problem(address)
        if address in _NAT64:
            return address_problem(IPv4Address(int(address) & 0xFFFFFFFF)) or _general_problem(address)
        if address.teredo is not None:
            return "reserved"
    return _general_problem(address)


def _general_problem(address: Address) -> str | None:
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("shared (CGNAT)", isinstance(address, IPv4Address) and address in _CGNAT),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, IPv6Address) and address.is_site_local),
        ("not global", not address.is_global),
    )
    return next((name for name, applies in checks if applies), None)


def _normal_host(host: str) -> str:
    """Lower case, without the brackets of an IPv6 literal, its zone id or a final dot."""
    host = host.strip().strip("[]").lower()
    host = host.split("%", 1)[0]
    return host[:-1] if host.endswith(".") else host


# --- URLs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundTarget:
    """A checked URL: what to connect to (`address`) and what to call the server (`host`)."""

    scheme: str
    host: str  # ASCII (IDNA) name or address, as the server should see it
    port: int
    path: str
    address: str

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the name: httpx connects there and nowhere else."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return urlunsplit((self.scheme, f"{address}:{self.port}", self.path or "/", "", ""))


def check_url_form(url: str) -> tuple[str, str, int, str]:
    """(scheme, ASCII host, port, path) of a well-formed base URL, or OutboundRefused saying what is wrong.

    The form alone, no resolution: http or https, a host, no user name or password, no query, no fragment.
    """
    if not isinstance(url, str) or not url.strip():
        raise OutboundRefused("Give an address starting with https:// (or http://).")
    url = url.strip()
    if any(character.isspace() or ord(character) < 32 for character in url):
        raise OutboundRefused("The address contains spaces or invisible characters; paste it again.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise OutboundRefused(f"This is not a valid web address ({error}).") from error
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise OutboundRefused("The address must start with https:// or http://.")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise OutboundRefused(
            "The address must not contain a user name or password (the part before “@”). "
            "Put the API key in its own field."
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise OutboundRefused(
            "The address must end with its path, like https://api.openai.com/v1, without “?” or “#” "
            "and what follows them."
        )
    if not parts.hostname:
        raise OutboundRefused("This address has no server name.")
    host = _normal_host(parts.hostname)
    try:
        ascii_host = host.encode("idna").decode("ascii") if not _is_address(host) else host
    except UnicodeError as error:
        raise OutboundRefused(f"The server name “{host}” is not a valid name.") from error
    return scheme, ascii_host, port or DEFAULT_PORTS[scheme], parts.path


def join_url(base_url: str, path: str) -> str:
    """`path` under the base URL's path (whose query and fragment, if any, are dropped, never merged)."""
    parts = urlsplit(base_url.strip())
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, joined, "", ""))


def resolve_target(url: str, policy: OutboundPolicy) -> OutboundTarget:
    """Check the URL, resolve its host once and check every address; OutboundRefused says why not."""
    scheme, host, port, path = check_url_form(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise OutboundRefused(f"Lathe could not find the server “{host}”. Check the address.") from error
    addresses = [ipaddress.ip_address(entry[4][0]) for entry in found if entry[0] in _FAMILIES]
    if not addresses:
        raise OutboundRefused(f"Lathe could not find the server “{host}”. Check the address.")
    if not policy.allows_host(host):
        for address in addresses:
            if address_problem(address) is not None and not policy.allows_address(address):
                raise OutboundRefused(INSIDE_MESSAGE)
    return OutboundTarget(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


def check_url(url: str, policy: OutboundPolicy) -> str:
    """The URL, stripped, when Lathe may call it; OutboundRefused with the user's words otherwise."""
    resolve_target(url, policy)
    return url.strip()


_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- Requests ---------------------------------------------------------------------------------------


class OutboundClient:
    """An async HTTP client for user-given addresses: use as `async with OutboundClient(...) as client`.

    Each request resolves and checks its host, connects to the checked address, follows no redirect,
    and ends within `policy.timeout_seconds` with at most `policy.max_bytes` of answer read.
    """

    def __init__(
        self, *, policy: OutboundPolicy, headers: dict | None = None, max_connections: int = 4
    ) -> None:
        self.policy = policy
        per_step = httpx.Timeout(
            policy.timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, policy.timeout_seconds)
        )
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=per_step,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the connection goes to the checked address
        )

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._client.aclose()

    async def post(self, url: str, *, json: object = None) -> httpx.Response:
        return await self.request("POST", url, json=json)

    async def request(self, method: str, url: str, *, json: object = None) -> httpx.Response:
        """The whole answer, read; OutboundError (refused, redirect, too slow, too large) otherwise."""
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                target = await asyncio.to_thread(resolve_target, url, self.policy)
                return await self._send(method, target, json)
        except TimeoutError as error:
            host = urlsplit(url).hostname or url
            raise OutboundTimeout(
                f"The server at {host} took longer than {self.policy.timeout_seconds:g} s to answer in full "
                "(the limit is LATHE_OUTBOUND_TIMEOUT)."
            ) from error

    async def _send(self, method: str, target: OutboundTarget, json: object) -> httpx.Response:
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = self._client.build_request(
            method, target.connect_url, json=json, headers={"Host": target.host_header}, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        try:
            if response.is_redirect or 300 <= response.status_code < 400:
                location = response.headers.get("location", "another address")
                raise OutboundRedirect(
                    f"The server at {target.host} answered with a redirect ({response.status_code}) to "
                    f"{location[:200]}; Lathe does not follow redirects. Use the final address instead."
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.policy.max_bytes:
                    raise OutboundTooLarge(
                        f"The server at {target.host} sent more than {self.policy.max_bytes // 1024} KiB "
                        "(the limit is LATHE_OUTBOUND_MAX_BYTES); Lathe stopped reading."
                    )
        finally:
            await response.aclose()
        # The body is already decoded: a fresh response must not decode it again.
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=request)


def outbound_request(
    method: str, url: str, *, policy: OutboundPolicy, json: object = None, headers: dict | None = None
) -> httpx.Response:
    """One blocking request through OutboundClient (on an event loop of its own, in a thread)."""
    outcome: dict = {}

    async def send() -> httpx.Response:
        async with OutboundClient(policy=policy, headers=headers, max_connections=1) as client:
            return await client.request(method, url, json=json)

    def run() -> None:
        try:
            outcome["response"] = asyncio.run(send())
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="outbound-request", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]

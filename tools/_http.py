"""HTTP requests to allowed hosts only, never to the machine's own network or a cloud's metadata
service unless the rules grant it (server-side request forgery is the attack this stops).

The name is resolved here, every address is checked, and the connection is made to a checked
address through a resolver that knows only those (`_PinnedResolver`): DNS cannot answer
differently between the check and the connect (rebinding). Redirects are followed by hand so
each hop is checked the same way. aiohttp errors are translated into `ToolError` at one place,
`fetch`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ._errors import ToolError, ToolErrorKind

__all__ = ["HttpResult", "HttpRules", "fetch"]

TOOL = "http"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services hand out credentials to whoever asks from inside the machine.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254",
                                                                  "100.100.100.200"))
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Credentials meant for one host are not handed to the next one a redirect names.
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# What the C library's inet_aton would read as an IPv4 address: 2130706433, 0x7f.1, 0177.0.0.1.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")


@dataclass(frozen=True)
class HttpRules:
    """What a task's HTTP grant allows.

    `allow_hosts`: exact names (or IP addresses) and `*.suffix` patterns (any name below the
    suffix, not the suffix itself). `grant_networks`: CIDR networks that may be reached although
    they are not public (loopback, private, link-local…); metadata services need
    `allow_metadata` as well, so granting a private network never grants them by accident."""

    allow_hosts: tuple[str, ...]
    grant_networks: tuple[str, ...] = ()
    allow_metadata: bool = False
    max_redirects: int = 5
    timeout: float = 30.0  # the whole call: every hop, resolving, connecting and reading
    connect_timeout: float = 10.0
    max_response_bytes: int = 5 << 20
    max_request_bytes: int = 1 << 20
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            nets = tuple(ipaddress.ip_network(n, strict=False) for n in self.grant_networks)
        except ValueError as exc:
            raise ToolError(TOOL, "bad_request", f"invalid granted network: {exc}") from None
        object.__setattr__(self, "networks", nets)


@dataclass(frozen=True)
class HttpResult:
    """The final answer (a 4xx or 5xx too: it is an answer the caller reads, not a tool failure)."""

    status: int
    reason: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    url: str  # the URL that answered, after redirects
    redirects: tuple[str, ...] = ()  # the URLs that redirected, in order


def _error(kind: ToolErrorKind, reason: str) -> ToolError:
    return ToolError(TOOL, kind, reason)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names when it is an IP in any spelling (decimal, octal, hex, short
    dotted, IPv6, IPv4-mapped IPv6), normalised to the address actually reached; None for a name."""
    bare = host.strip("[]").lower()
    try:
        address: IPAddress = ipaddress.ip_address(bare.split("%")[0])
    except ValueError:
        if not _NUMERIC_HOST.match(bare):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            raise _error("bad_request", f"host {host!r} looks like an IP address but is not a valid one") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern or (literal_address(pattern) is not None and host == str(literal_address(pattern))):
            return True
    return False


def _address_refusal(address: IPAddress, rules: HttpRules) -> str | None:
    """Why `address` may not be reached under `rules`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        # 6to4 and NAT64 addresses carry an IPv4 address that a gateway will reach for us.
        inner = address.sixtofour or (ipaddress.IPv4Address(address.packed[-4:]) if address in _NAT64 else None)
        if inner is not None and (why := _address_refusal(inner, rules)):
            return f"{why.removesuffix(' address')} address inside IPv6 ({inner})"
    if address in METADATA_ADDRESSES:
        return None if rules.allow_metadata else "a cloud metadata address"
    if any(address in net for net in rules.networks):
        return None
    if address.is_global and not address.is_multicast:
        return None
    for what, flag in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                       ("multicast", address.is_multicast), ("unspecified", address.is_unspecified),
                       ("private", address.is_private), ("reserved", address.is_reserved)):
        if flag:
            return f"a {what} address"
    return "not a public address"


class _PinnedResolver(AbstractResolver):
    """Answers only for names this module has resolved and checked, with exactly the checked
    addresses; aiohttp asks it when connecting, so it never resolves a name again."""

    def __init__(self) -> None:
        self.pinned: dict[str, list[IPAddress]] = {}

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        addresses = self.pinned.get(host.lower().rstrip("."))
        if not addresses:
            raise OSError(f"{host} was not checked before connecting")
        return [ResolveResult(hostname=host, host=str(a), port=port,
                              family=socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for a in addresses]

    async def close(self) -> None:
        pass


async def _check(url: URL, rules: HttpRules, resolver: _PinnedResolver) -> URL:
    """Refuse `url` unless its scheme, host and every address it resolves to are allowed; pin the
    addresses. Returns the URL to request (an IP host in its normal spelling)."""
    if url.scheme not in ("http", "https"):
        raise _error("refused", f"URL {str(url)!r}: scheme {url.scheme or 'none'!r} is not allowed; "
                                "only http and https")
    if not url.raw_host:
        raise _error("bad_request", f"URL {str(url)!r} has no host")
    host = url.raw_host.lower().rstrip(".")
    address = literal_address(host)
    name = str(address) if address is not None else host
    if not _host_allowed(name, rules.allow_hosts):
        raise _error("refused", f"host {host!r} is not on the allowlist")
    if address is not None:
        if why := _address_refusal(address, rules):
            shown = f"{host!r}" if name == host else f"{host!r} (that is {name})"
            raise _error("refused", f"host {shown} is {why}")
        return url.with_host(name)
    if host in METADATA_HOSTS and not rules.allow_metadata:
        raise _error("refused", f"host {host!r} is a cloud metadata service")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _error("failed", f"host {host!r} could not be resolved ({exc.strerror})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        resolved = literal_address(str(info[4][0]))
        assert resolved is not None  # getaddrinfo gives numeric addresses
        if why := _address_refusal(resolved, rules):
            # One bad address refuses the name: a name resolving to public and private addresses
            # at once is how rebinding attacks hedge their bets.
            raise _error("refused", f"host {host!r} resolves to {resolved}, {why}")
        if resolved not in addresses:
            addresses.append(resolved)
    resolver.pinned[host] = addresses
    return url


async def _read_capped(response: aiohttp.ClientResponse, cap: int, url: URL) -> bytes:
    declared = response.content_length
    if declared is not None and declared > cap:
        raise _error("limit", f"response from {url.host} is {declared} bytes, over the limit of {cap}")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > cap:
            raise _error("limit", f"response from {url.host} is over the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                body: bytes | None = None, rules: HttpRules) -> HttpResult:
    """Make the request under `rules`, following up to `rules.max_redirects` redirects, each
    checked as the first URL was."""
    if body is not None and len(body) > rules.max_request_bytes:
        raise _error("limit", f"request body is {len(body)} bytes, over the limit of {rules.max_request_bytes}")
    try:
        target = URL(url)
    except (ValueError, TypeError) as exc:
        raise _error("bad_request", f"invalid URL {url!r}: {exc}") from None
    resolver = _PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, connect=rules.connect_timeout)
    sent = dict(headers or {})
    redirects: list[str] = []
    try:
        async with asyncio.timeout(rules.timeout), \
                aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
            while True:
                request_url = await _check(target, rules, resolver)
                async with session.request(method, request_url, headers=sent, data=body,
                                           allow_redirects=False, auto_decompress=True) as response:
                    location = response.headers.get("Location")
                    if response.status in _REDIRECTS and location:
                        redirects.append(str(target))
                        if len(redirects) > rules.max_redirects:
                            raise _error("limit", f"more than {rules.max_redirects} redirects, starting at {url!r}")
                        following = target.join(URL(location))
                        if following.host != target.host:
                            sent = {k: v for k, v in sent.items() if k.lower() not in _PRIVATE_HEADERS}
                        if response.status == 303 or (response.status in (301, 302) and method.upper() == "POST"):
                            method, body = "GET", None
                        target = following
                        continue
                    data = await _read_capped(response, rules.max_response_bytes, target)
                    return HttpResult(response.status, response.reason or "",
                                      {k.lower(): v for k, v in response.headers.items()}, data, str(target),
                                      tuple(redirects))
    except TimeoutError:
        raise _error("limit", f"{target.host} did not answer within {rules.timeout:g} s") from None
    except aiohttp.ClientConnectorError as exc:
        detail = "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else _one_line(exc)
        raise _error("failed", f"could not connect to {target.host}: {detail}") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise _error("failed", f"request to {target.host} failed: {_one_line(exc)}") from None


def _one_line(exc: Any) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

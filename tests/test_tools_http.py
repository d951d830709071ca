"""The HTTP tool against a real aiohttp server on 127.0.0.1, started per test. Loopback is not a
public address, so the happy paths grant it (`LOCAL`); the SSRF cases check that, without the
grant, every spelling of a private or metadata address is refused with the sentence the user
reads, before any connection is made."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

from tools import HttpResult, HttpRules, ToolError, fetch

LOCAL = HttpRules(allow_hosts=("127.0.0.1",), grant_networks=("127.0.0.1/32",), max_response_bytes=1000)


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=f"hello {request.method} {await request.text()}".strip())


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["to"])


async def big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 2000)


async def streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
    await response.prepare(request)
    for _ in range(20):
        await response.write(b"y" * 100)
    await response.write_eof()
    return response


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes([web.route("*", "/hello", hello), web.get("/redirect", redirect), web.get("/big", big),
                    web.get("/streamed", streamed)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts connections (the kernel does, into its backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


async def refused(url: str, rules: HttpRules, **kwargs: Any) -> ToolError:
    with pytest.raises(ToolError) as caught:
        await fetch(url, rules=rules, **kwargs)
    return caught.value


async def test_a_granted_host_answers(server: str) -> None:
    result = await fetch(f"http://{server}/hello", method="POST", body=b"there", rules=LOCAL)
    assert (result.status, result.body, result.url) == (200, b"hello POST there", f"http://{server}/hello")
    assert result.headers["content-type"].startswith("text/plain")


async def test_redirects_are_followed_and_recorded(server: str) -> None:
    start = f"http://{server}/redirect?to=/hello"
    result = await fetch(start, rules=LOCAL)
    assert (result.status, result.body, result.redirects) == (200, b"hello GET", (start,))


async def test_too_many_redirects_are_a_limit(server: str) -> None:
    loop = f"http://{server}/redirect?to=/redirect?to=/hello"
    rules = HttpRules(allow_hosts=LOCAL.allow_hosts, grant_networks=LOCAL.grant_networks, max_redirects=1)
    error = await refused(loop, rules)
    assert (error.kind, str(error)) == ("limit", f"http: more than 1 redirects, starting at {loop!r}")


SSRF = HttpRules(allow_hosts=("127.0.0.1", "169.254.169.254", "10.0.0.5", "fd00:ec2::254", "100.100.100.200",
                              "metadata.google.internal", "::1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe",
                              "*.example.com"))


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1/", "host '127.0.0.1' is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "host '169.254.169.254' is a cloud metadata address"),
    ("http://2130706433/", "host '2130706433' (that is 127.0.0.1) is a loopback address"),
    ("http://0x7f.1/", "host '0x7f.1' (that is 127.0.0.1) is a loopback address"),
    ("http://0177.0.0.1/", "host '0177.0.0.1' (that is 127.0.0.1) is a loopback address"),
    ("http://[::ffff:127.0.0.1]/", "host '::ffff:7f00:1' (that is 127.0.0.1) is a loopback address"),
    ("http://[::ffff:169.254.169.254]/", "host '::ffff:a9fe:a9fe' (that is 169.254.169.254) is a cloud metadata "
                                         "address"),
    ("http://[::1]/", "host '::1' is a loopback address"),
    ("http://[2002:7f00:1::]/", "host '2002:7f00:1::' is a loopback address inside IPv6 (127.0.0.1)"),
    ("http://[64:ff9b::a9fe:a9fe]/", "host '64:ff9b::a9fe:a9fe' is a cloud metadata address inside IPv6 "
                                     "(169.254.169.254)"),
    ("http://10.0.0.5/", "host '10.0.0.5' is a private address"),
    ("http://[fd00:ec2::254]/", "host 'fd00:ec2::254' is a cloud metadata address"),
    ("http://100.100.100.200/", "host '100.100.100.200' is a cloud metadata address"),
    ("http://metadata.google.internal/", "host 'metadata.google.internal' is a cloud metadata service"),
    ("http://example.org/", "host 'example.org' is not on the allowlist"),
    ("http://example.com/", "host 'example.com' is not on the allowlist"),
    ("http://evilexample.com/", "host 'evilexample.com' is not on the allowlist"),
    ("ftp://127.0.0.1/", "URL 'ftp://127.0.0.1/': scheme 'ftp' is not allowed; only http and https"),
    ("file:///etc/passwd", "URL 'file:///etc/passwd': scheme 'file' is not allowed; only http and https"),
])
async def test_ssrf_targets_are_refused_without_a_grant(url: str, reason: str) -> None:
    error = await refused(url, SSRF)
    assert (error.kind, str(error)) == ("refused", f"http: {reason}")


async def test_a_decimal_ip_is_normalised_and_reached_when_granted(server: str) -> None:
    port = server.split(":")[1]
    result = await fetch(f"http://2130706433:{port}/hello", rules=LOCAL)
    assert (result.status, result.body) == (200, b"hello GET")


async def test_loopback_outside_the_granted_network_is_refused(server: str) -> None:
    port = server.split(":")[1]
    rules = HttpRules(allow_hosts=("127.0.0.2",), grant_networks=LOCAL.grant_networks)
    assert str(await refused(f"http://127.0.0.2:{port}/hello", rules)) == \
        "http: host '127.0.0.2' is a loopback address"


async def test_a_granted_private_network_does_not_grant_the_metadata_service() -> None:
    rules = HttpRules(allow_hosts=("169.254.169.254",), grant_networks=("169.254.0.0/16",))
    assert str(await refused("http://169.254.169.254/", rules)) == \
        "http: host '169.254.169.254' is a cloud metadata address"


@pytest.mark.parametrize("to", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/admin",
                                "http://127.0.0.2/"])
async def test_a_redirect_from_an_allowed_host_to_a_private_one_is_refused(server: str, to: str) -> None:
    rules = HttpRules(allow_hosts=("127.0.0.1", "127.0.0.2", "169.254.169.254", "10.0.0.5"),
                      grant_networks=LOCAL.grant_networks)
    error = await refused(f"http://{server}/redirect?to={to}", rules)
    host = to.split("/")[2]
    why = {"169.254.169.254": "a cloud metadata", "10.0.0.5": "a private", "127.0.0.2": "a loopback"}[host]
    assert str(error) == f"http: host '{host}' is {why} address"


async def test_a_redirect_to_a_host_not_on_the_allowlist_is_refused(server: str) -> None:
    error = await refused(f"http://{server}/redirect?to=http://example.org/", LOCAL)
    assert str(error) == "http: host 'example.org' is not on the allowlist"


async def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the first answer is checked and pinned; a later answer (the metadata
    service) is never asked for, because aiohttp connects through the pinned resolver."""
    loop = asyncio.get_running_loop()
    answers = iter(["127.0.0.1", "169.254.169.254"])
    asked: list[str] = []

    async def rebinding(host: str, port: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port or 80))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    port = server.split(":")[1]
    rules = HttpRules(allow_hosts=("*.example.com",), grant_networks=LOCAL.grant_networks)
    result = await fetch(f"http://api.example.com:{port}/hello", rules=rules)
    assert (result.status, result.body, asked) == (200, b"hello GET", ["api.example.com"])


async def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def private(host: str, port: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 80))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", private)
    error = await refused("http://api.example.com/", HttpRules(allow_hosts=("*.example.com",)))
    assert str(error) == "http: host 'api.example.com' resolves to 10.1.2.3, a private address"


@pytest.mark.parametrize(("path", "reason"), [
    ("big", "response from 127.0.0.1 is 2000 bytes, over the limit of 1000"),
    ("streamed", "response from 127.0.0.1 is over the limit of 1000 bytes"),
])
async def test_a_response_over_the_size_cap_is_a_limit(server: str, path: str, reason: str) -> None:
    error = await refused(f"http://{server}/{path}", LOCAL)
    assert (error.kind, str(error)) == ("limit", f"http: {reason}")


async def test_a_server_that_never_answers_times_out(silent: str) -> None:
    rules = HttpRules(allow_hosts=LOCAL.allow_hosts, grant_networks=LOCAL.grant_networks, timeout=0.5)
    started = asyncio.get_running_loop().time()
    error = await refused(f"http://{silent}/", rules)
    assert (error.kind, str(error)) == ("limit", "http: 127.0.0.1 did not answer within 0.5 s")
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_closed_port_fails_with_the_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = await refused(f"http://127.0.0.1:{port}/", LOCAL)
    assert (error.kind, str(error)) == ("failed", "http: could not connect to 127.0.0.1: connection refused")


async def test_an_oversize_request_body_is_refused_before_sending() -> None:
    error = await refused("http://127.0.0.1/", LOCAL, method="POST", body=b"z" * (LOCAL.max_request_bytes + 1))
    assert (error.kind, str(error)) == ("limit", f"http: request body is {LOCAL.max_request_bytes + 1} bytes, "
                                                 f"over the limit of {LOCAL.max_request_bytes}")


def test_the_result_is_plain_data() -> None:
    assert HttpResult(200, "OK", {}, b"", "http://x/").redirects == ()

"""The one place a provider request goes over the network: aiohttp, with every transport
failure translated into an `LLMError`.

aiohttp rather than httpx: with 1,000 requests in flight httpx's connection pool spends CPU
quadratic in the requests queued (BENCHMARKS.md, "1,000 LLM calls in flight"). The wire
formats only see bytes, so the client is this module's choice alone.
"""

from __future__ import annotations

import aiohttp
import msgspec

from ._errors import LLMError
from ._types import HttpRequest
from .wire._common import one_line

__all__ = ["Answer", "http_client", "send"]


class Answer(msgspec.Struct, frozen=True):
    status: int
    reason: str | None
    headers: dict[str, str]  # names in lower case
    body: bytes


def http_client(connections: int = 100) -> aiohttp.ClientSession:
    """A client holding up to `connections` at once (an executor: one per attempt it may run, so
    none waits for a connection and a call's latency is the provider's). No client-wide timeout:
    each attempt is bounded by its own time limit."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
                                 timeout=aiohttp.ClientTimeout(total=None))


async def send(http: aiohttp.ClientSession, request: HttpRequest, where: str) -> Answer:
    """POST `request` and read the whole answer (a stream too: until the server ends it)."""
    try:
        async with http.post(request.url, data=request.body, headers=request.headers) as response:
            body = await response.read()
            headers = {k.lower(): v for k, v in response.headers.items()}
            return Answer(response.status, response.reason, headers, body)
    except TimeoutError as exc:  # the client's own; the attempt's deadline arrives as a cancellation
        raise LLMError("timeout", f"{where} did not answer in time ({type(exc).__name__})") from exc
    except aiohttp.InvalidURL as exc:
        raise LLMError("bad_request", f"invalid LLM URL {request.url!r}", retryable=False) from exc
    except aiohttp.ClientConnectorError as exc:
        detail = "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else one_line(str(exc))
        raise LLMError("server_error", f"connection failed: {where}: {detail}") from exc
    except aiohttp.ClientPayloadError as exc:
        raise LLMError("server_error", f"connection cut: {where} closed it before the answer was complete "
                       f"({one_line(str(exc)) or type(exc).__name__})") from exc
    except (aiohttp.ClientError, OSError) as exc:
        detail = one_line(str(exc)) or type(exc).__name__
        raise LLMError("server_error", f"connection failed: {where}: {detail}") from exc

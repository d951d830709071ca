"""`create_app(view, tokens)`: the Litestar app of `ymera serve`, over one view.

It mounts every route (docs/web.md lists them): the guide's (`/dashboard`, `/quality/metrics`,
`/security/events`), the API's (web/_routes*.py), `/healthz` (web/_health.py), the live feed
(`/api/live`, web/_live.py), `/metrics` (web/_metrics.py), the page (`/`, `/static/...`:
web/static/) and the OpenAPI document (`/openapi.json`).

Who may call what is one guard (`_guard`): a route's `opt["role"]` says the role it needs (`read`
unless it says otherwise; None: anyone), and a request proves one with its bearer token
(web/_auth.py). Every error is a JSON body `{"error": "...", "detail": ...}` with its status: a
bad parameter names the parameter and what it takes (400), a missing or unknown token is 401, a
token without the role 403, an unknown workflow 404; an error of ours is never a 500.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import File
from litestar.static_files import create_static_files_router

import store
from events import YmeraError

from ._auth import TokenError, Tokens
from ._fresh import REFRESH_SECONDS
from ._health import MAX_LAG, health_routes
from ._live import live_routes
from ._metrics import metrics_routes
from ._routes import MAX_LIMIT, BadRequest, NotFound, workflow_routes
from ._routes_audit import AuditCache, audit_routes
from ._routes_models import model_routes
from ._routes_reports import MAX_HOURS, report_routes
from ._view import View

__all__ = ["PARAMETER_RULES", "SECURITY_HEADERS", "STATIC_DIR", "create_app"]

_log = structlog.get_logger("ymera.web")
STATIC_DIR = Path(__file__).resolve().parent / "static"
# What each query parameter takes, as an error about it says.
PARAMETER_RULES = {
    "limit": f"an integer from 1 to {MAX_LIMIT}",
    "offset": "an integer from 0",
    "after_seq": "an integer from 0 (a stream seq)",
    "hours": f"a number of hours more than 0 and at most {MAX_HOURS}",
    "max_lag": f"an integer from 0 (default {MAX_LAG})",
}
_ROLE_RANK = {"read": 0, "admin": 1}


# ---- who may call what ----------------------------------------------------------------------


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    if connection.url.path == "/api/live":  # EventSource cannot set a header
        return connection.query_params.get("token")
    return None


def _guard(tokens: Tokens) -> Any:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        needed = handler.opt.get("role", "read")
        if needed is None or not tokens.required:
            return
        text = _bearer(connection)
        challenge = {"WWW-Authenticate": 'Bearer realm="ymera"'}
        if text is None:
            raise NotAuthorizedException("this route needs a token: send `Authorization: Bearer TOKEN` "
                                         "(`ymera tokens add NAME` makes one)", headers=challenge)
        if text == "":
            raise NotAuthorizedException("the Authorization header must be `Bearer TOKEN`", headers=challenge)
        token = tokens.check(text)
        if token is None:
            raise NotAuthorizedException("unknown or revoked token", headers=challenge)
        if _ROLE_RANK[token.role] < _ROLE_RANK[needed]:
            raise PermissionDeniedException(f"this route needs the {needed} role; token {token.name!r} has the "
                                            f"{token.role} role")
        connection.state["token"] = token.name

    return guard


# Sent with every answer. The page loads its own files only and writes no HTML from data (every
# value becomes text), so a workflow id, an output or a finding holding `<script>` stays text; the
# policy says so to the browser too, and no other site may frame the page or read its referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


# ---- errors ---------------------------------------------------------------------------------


def _error(status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> Response[Any]:
    # An error skips `after_request`: it carries the security headers itself.
    return Response({"error": message, "detail": detail}, status_code=status,
                    headers={**SECURITY_HEADERS, **(headers or {})}, media_type="application/json")


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    messages = []
    for item in extra:
        if not isinstance(item, dict) or "key" not in item:
            continue
        key, source = str(item["key"]), item.get("source", "query")
        source = str(getattr(source, "value", source))  # a ParamType, or its value
        raw = request.query_params.get(key) if source == "query" else request.path_params.get(key)
        rule = PARAMETER_RULES.get(key)
        got = f"; got {raw!r}" if raw is not None else ""
        messages.append(f"{source} parameter {key} must be {rule}{got}" if rule is not None
                        else f"{source} parameter {key}: {item.get('message', 'not valid')}{got}")
    message = "; ".join(messages) or str(exc.detail)
    return _error(400, message, extra or None)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return _validation(request, exc)
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.url.path} (docs/web.md lists them; /openapi.json describes them)"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return _error(exc.status_code, message, exc.extra or None, exc.headers)


def _ours(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, NotFound):
        return _error(404, str(exc))
    if isinstance(exc, store.StoreError):
        _log.warning("the event log could not be read", error=str(exc))
        return _error(503, str(exc))
    if isinstance(exc, TokenError):  # the server's token file, not the request, is wrong: refused, said why
        _log.warning("the token file could not be read", error=str(exc))
        return _error(503, str(exc))
    if isinstance(exc, BadRequest | YmeraError):
        return _error(400, str(exc))
    _log.exception("request failed", path=request.url.path)
    return _error(500, f"internal error ({type(exc).__name__}); the server's log has the traceback")


# ---- the app --------------------------------------------------------------------------------


async def _secured(response: Response[Any]) -> Response[Any]:
    response.headers.update(SECURITY_HEADERS)
    return response


def _page_routes() -> list[Any]:
    @get("/", include_in_schema=False, opt={"role": None}, sync_to_thread=False)
    def index() -> File:
        return File(STATIC_DIR / "index.html", content_disposition_type="inline", media_type="text/html")

    @get("/openapi.json", include_in_schema=False, opt={"role": None}, sync_to_thread=False)
    def openapi(request: Request[Any, Any, Any]) -> Response[Any]:
        return Response(request.app.openapi_schema.to_schema(), media_type="application/json")

    static = create_static_files_router("/static", directories=[STATIC_DIR], opt={"role": None},
                                        include_in_schema=False)
    return [index, openapi, static]


def create_app(view: View, tokens: Tokens, *, refresh: float = REFRESH_SECONDS) -> Litestar:
    """The app over `view` (started by the caller), letting in what `tokens` says; the answers that read
    the log recomputed at most every `refresh` seconds while events arrive (web/_fresh.py)."""
    audit = AuditCache(view)
    handlers = [*workflow_routes(view), *report_routes(view, refresh), *model_routes(view), *audit_routes(audit),
                *health_routes(view), *live_routes(view.hub), *metrics_routes(view, refresh), *_page_routes()]
    openapi = OpenAPIConfig(
        title="Ymera", version="1", path="/schema", render_plugins=[JsonRenderPlugin()],  # and /openapi.json
        description="The read-only API of `ymera serve` over projections of the event log (docs/web.md).",
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
        security=[{"bearer": []}])

    async def startup() -> None:
        audit.start()

    async def shutdown() -> None:
        await audit.stop()

    app = Litestar(route_handlers=handlers, guards=[_guard(tokens)], openapi_config=openapi,
                   exception_handlers={HTTPException: _http, Exception: _ours}, on_startup=[startup],
                   on_shutdown=[shutdown], after_request=_secured, debug=False)
    app.state["view"] = view
    app.state["audit"] = audit
    return app

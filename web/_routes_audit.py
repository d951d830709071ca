"""`GET /api/audit` (the latest audit of the log, and when it ran) and `POST /api/audit/verify` (admin).

The audit (actors/_audit.py, `ymera audit verify`'s) reads the whole log and the whole stream, so
it is not run per request: once as the server starts, in the background, and again on
`POST /api/audit/verify`; `GET /api/audit` answers from the latest result, with its times. One
audit runs at a time: a verify asked for while one runs answers with that one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from litestar import get, post

from actors._audit import audit, audit_dict

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from ._view import View

__all__ = ["AuditCache", "audit_routes"]

_log = structlog.get_logger("ymera.web")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class AuditCache:
    """The latest audit's result, and the one running."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run an audit in the background, unless one runs already."""
        if self.running:
            return
        self.started_at, self.finished_at = _now(), None
        self._task = asyncio.create_task(self._run(), name="ymera-web-audit")

    async def _run(self) -> None:
        view = self.view
        try:
            result = await audit(view.log, view.bus, view.settings.keys_dir)
            self.result, self.error = audit_dict(result), None
        except Exception as exc:  # the status says so; the server goes on
            _log.warning("the audit failed", error=str(exc))
            self.error = f"{type(exc).__name__}: {exc}"
        self.finished_at = _now()

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def status(self) -> dict[str, Any]:
        state = ("running" if self.running else "failed" if self.error is not None
                 else "done" if self.result is not None else "not_run")
        return {"state": state, "started_at": self.started_at, "finished_at": self.finished_at,
                "ok": self.result["ok"] if self.result is not None else None, "error": self.error,
                "result": self.result}


def audit_routes(cache: AuditCache) -> list[HTTPRouteHandler]:
    @get("/api/audit", summary="The latest audit of the log: chain, checkpoints, the stream compared",
         description="`state`: `running`, `done`, `failed` or `not_run`; `result` is the latest finished audit "
                     "(`ymera audit verify`'s checks), kept while a new one runs; `ok` is whether it found nothing.")
    async def audit_status() -> dict[str, Any]:
        return cache.status()

    @post("/api/audit/verify", summary="Run the audit again, in the background (admin)", status_code=202,
          opt={"role": "admin"},
          description="Answers at once (202) with the status; `GET /api/audit` shows the result once it is done.")
    async def audit_verify() -> dict[str, Any]:
        cache.start()
        return cache.status()

    return [audit_status, audit_verify]

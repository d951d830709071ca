"""`GET /healthz`: whether this instance can answer, for load balancers (no token needed).

200 when NATS answers, the view follows the stream and is at most `max_lag` messages behind it
(default `MAX_LAG`), and the stream is the one the log was stored from (it does not end before
what the view folded); else 503, `error` naming every reason. Either way the body says where the
stream, the view and the store stand: the stream's last seq, each actor's durable consumer's
backlog (`consumer_lag`: shown, not judged), the view's last folded seq and its lag, the log's
head seq and hash.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Response, get
from litestar.params import QueryParameter

from bus import ACTOR_ROLES, Bus, BusError, ConsumerState
from store import StoreError

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from ._view import View

__all__ = ["MAX_LAG", "consumer_states", "health", "health_routes"]

MAX_LAG = 10_000  # messages the view may be behind the stream and still be healthy


async def consumer_states(bus: Bus) -> dict[str, ConsumerState]:
    """Each actor's durable consumer's state, by actor (those that have one yet); `BusError` if NATS does not answer."""
    states = await asyncio.gather(*(bus.consumer_state(name) for name in ACTOR_ROLES))
    return {name: state for name, state in zip(ACTOR_ROLES, states, strict=True) if state is not None}


async def _store_head(view: View) -> tuple[int, str] | str:
    """The log's head (seq, hash hex), read now; or why it could not be read."""
    try:
        seq, digest = await view.log.head()
    except StoreError as exc:
        return f"the event log {view.log.path} cannot be read: {exc}"
    return (seq, digest.hex()) if seq else (0, "")


async def health(view: View, max_lag: int = MAX_LAG) -> tuple[bool, dict[str, Any]]:
    reasons: list[str] = []
    nats: dict[str, Any] = {"reachable": False, "stream_last_seq": None}
    if view.bus is None:
        reasons.append("the view follows no stream (offline)")
    else:
        try:
            state = await view.bus.stream_state()
            nats = {"reachable": True, "stream_last_seq": state.last_seq, "stream_first_seq": state.first_seq}
            # What each actor has still to read (and has read, not acked): the engine's backlog,
            # shown, not judged (this instance answers whatever the engine's pace).
            nats["consumer_lag"] = {name: {"pending": c.num_pending, "ack_pending": c.num_ack_pending}
                                    for name, c in (await consumer_states(view.bus)).items()}
        except BusError as exc:
            reasons.append(f"NATS is not reachable: {exc}")
    lag = max(0, nats["stream_last_seq"] - view.last_seq) if nats["stream_last_seq"] is not None else None
    if nats["stream_last_seq"] is not None and nats["stream_last_seq"] < view.last_seq:
        reasons.append(f"the stream ends at seq {nats['stream_last_seq']}, before seq {view.last_seq} the view folded "
                       "from the log: another stream, or one made anew")
    if lag is not None and lag > max_lag:
        reasons.append(f"the view is {lag} messages behind the stream (more than {max_lag})")
    if view.follow_error is not None:
        reasons.append(f"the view cannot follow the stream: {view.follow_error}")
    head = await _store_head(view)
    if isinstance(head, str):
        reasons.append(head)
        store: dict[str, Any] = {"head_seq": None, "head_hash": None}
    else:
        store = {"head_seq": head[0], "head_hash": head[1]}
    body = {"status": "ok" if not reasons else "unavailable", "nats": nats,
            "view": {"last_seq": view.last_seq, "lag": lag, "rebuilt_seq": view.rebuilt_seq, "events": view.folded,
                     "skipped": [list(r) for r in view.skipped]},
            "store": store}
    if reasons:
        body = {"error": "; ".join(reasons), "detail": {"reasons": reasons}, **body}
    return not reasons, body


def health_routes(view: View) -> list[HTTPRouteHandler]:
    @get("/healthz", summary="Health for load balancers: NATS reachable, the view's lag, the store's head",
         description="200 when healthy, 503 with `error` naming each reason when not. Needs no token.",
         opt={"role": None}, responses=None)
    async def healthz(
        max_lag: Annotated[int, QueryParameter(ge=0, le=2**62, description="the most messages the view may be behind "
                                                                       f"(default {MAX_LAG})")] = MAX_LAG,
    ) -> Response[dict[str, Any]]:
        ok, body = await health(view, max_lag)
        return Response(body, status_code=200 if ok else 503)

    return [healthz]

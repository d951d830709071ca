"""Snapshots: an actor's folded state at stream seq N, so a start folds only the stream after N.

A snapshot is msgpack: an envelope (format, actor, the actor's `state_version`, a
fingerprint of the state's shape, the stream it belongs to, the seq) around the state, the
actor's `state_fields` as plain data. Any mismatch (an older format, a bumped
`state_version`, a changed field or type anywhere in the state, a stream created anew, bytes
that do not decode) makes a start ignore the snapshot with a warning and fold from the
start: a snapshot only ever saves time, it is never needed for correctness.

Crash safety: the runtime takes a snapshot only between batches, after the batch's outputs
were published (acked by the stream) and folded, so the state never claims a seq whose
effects it lacks, and never holds a decision the stream does not. The state is encoded at
once, on the event loop (it is mutable); the write to the bucket runs in the background,
one at a time (bus/_snapshots.py: a write that dies halfway leaves the previous one whole).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any, get_args

import msgspec
import msgspec.inspect
import structlog

from bus import Bus, BusError

if TYPE_CHECKING:
    from ._runtime import Actor

__all__ = ["FORMAT", "Snapshots", "encode_snapshot", "shape_of", "state_type"]

FORMAT = 1
_log = structlog.get_logger("ymera.snapshot")
# Attributes of an actor that are not folded state.
NOT_STATE = frozenset({"settings", "bus", "metrics"})
# Snapshots are at least this many times their encoding's duration apart.
SPACING = 50


class _Format(msgspec.Struct):
    format: int


class _Envelope(msgspec.Struct, frozen=True):
    format: int
    actor: str
    version: int
    shape: str
    stream_created: str
    seq: int
    state: msgspec.Raw


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, deque):
        return list(obj)
    raise NotImplementedError(f"cannot snapshot a {type(obj).__name__}")


def _dec_hook(kind: Any, obj: Any) -> Any:
    if getattr(kind, "__origin__", kind) is deque:
        args = get_args(kind)
        item: Any = args[0] if args else Any
        return deque(msgspec.convert(obj, list[item], dec_hook=_dec_hook))
    raise NotImplementedError(f"cannot restore a {kind}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_types: dict[type, tuple[type, str]] = {}


def state_type(actor: type[Actor]) -> type:
    """A Struct with one field per entry of the actor's `state_fields`."""
    return _typed(actor)[0]


def shape_of(actor: type[Actor]) -> str:
    """A fingerprint of every field name and type in the actor's state, nested ones included."""
    return _typed(actor)[1]


def _typed(actor: type[Actor]) -> tuple[type, str]:
    if actor not in _types:
        struct = msgspec.defstruct(f"{actor.name}_state", list(actor.state_fields.items()))
        _types[actor] = (struct, hashlib.sha256(_describe(msgspec.inspect.type_info(struct), set()).encode())
                         .hexdigest()[:16])
    return _types[actor]


def _describe(info: Any, seen: set[int]) -> str:
    """Names and types of a msgspec type description, without defaults (their reprs vary)."""
    if isinstance(info, msgspec.inspect.Type):
        if id(info) in seen:
            return "<ref>"
        seen.add(id(info))
        parts = [type(info).__name__]
        for name in info.__struct_fields__:
            if name not in ("default", "default_factory"):
                parts.append(f"{name}={_describe(getattr(info, name), seen)}")
        return "(" + " ".join(parts) + ")"
    if isinstance(info, msgspec.inspect.Field):
        return f"{info.name}:{_describe(info.type, seen)}"
    if isinstance(info, (tuple, list)):
        return "[" + ",".join(_describe(i, seen) for i in info) + "]"
    if isinstance(info, type):
        return f"{info.__module__}.{info.__qualname__}"
    return repr(info)


def encode_snapshot(actor: Actor, seq: int, stream_created: str, *, version: int | None = None) -> bytes:
    """The actor's state now, as a snapshot at `seq`."""
    kind = type(actor)
    state = _encoder.encode({name: getattr(actor, name) for name in kind.state_fields})
    return _encoder.encode(_Envelope(
        format=FORMAT, actor=kind.name, version=kind.state_version if version is None else version,
        shape=shape_of(kind), stream_created=stream_created, seq=seq, state=msgspec.Raw(state)))


def _restore(actor: Actor, data: bytes, stream_created: str) -> int:
    """Put the snapshot's state into `actor`; return its seq. ValueError says why it does not fit."""
    kind = type(actor)
    try:
        fmt = msgspec.msgpack.decode(data, type=_Format).format
        if fmt != FORMAT:
            raise ValueError(f"format {fmt}, this build reads format {FORMAT}")
        env = msgspec.msgpack.decode(data, type=_Envelope)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a snapshot: {exc}") from None
    if env.actor != kind.name:
        raise ValueError(f"it is actor {env.actor}'s")
    if env.version != kind.state_version:
        raise ValueError(f"state version {env.version}, this build's {kind.name} is version {kind.state_version}")
    if env.shape != shape_of(kind):
        raise ValueError("the state's fields or types changed since it was written")
    if env.stream_created != stream_created:
        raise ValueError(f"it belongs to a stream created {env.stream_created}, this one was created {stream_created}")
    try:
        state: Any = msgspec.msgpack.decode(env.state, type=state_type(kind), dec_hook=_dec_hook)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"its state does not decode: {exc}") from None
    for name in kind.state_fields:
        setattr(actor, name, getattr(state, name))
    return env.seq


def check_state_fields(actor: Actor) -> None:
    """Refuse an actor keeping state its snapshot would not hold (a field added, not declared)."""
    undeclared = sorted(set(vars(actor)) - NOT_STATE - set(type(actor).state_fields))
    if undeclared:
        raise TypeError(f"actor {type(actor).name} keeps {', '.join(undeclared)} outside its state_fields: "
                        "declare them there (and bump state_version), or snapshots would lose them")


class Snapshots:
    """One actor's snapshots: `load` at start; `maybe_take` between batches; `close` at stop."""

    def __init__(self, actor: Actor, bus: Bus) -> None:
        self.actor = actor
        self.store = bus.snapshots
        self.stream_created = ""  # which stream the seqs count in: set by `load`
        settings = actor.settings
        self.enabled = settings.snapshots
        self.every_events = settings.snapshot_every_events
        self.every_seconds = settings.snapshot_every_seconds
        self.seq = 0  # of the last snapshot loaded or taken
        self.taken_at = time.monotonic()
        self.encode_seconds = 0.0  # how long the last snapshot took to encode, on the loop
        self._writing: asyncio.Task[None] | None = None
        if self.enabled:
            check_state_fields(actor)

    @property
    def key(self) -> str:
        return type(self.actor).name

    async def load(self, stream_created: str) -> int:
        """Restore the actor from its snapshot of the stream created at `stream_created`; the
        seq it holds, or 0 (ignored or none)."""
        self.stream_created = stream_created
        if not self.enabled:
            return 0
        try:
            data = await self.store.load(self.key)
            if data is None:
                return 0
            self.seq = _restore(self.actor, data, self.stream_created)
        except (BusError, ValueError) as exc:
            _log.warning("snapshot ignored; folding from the start", actor=self.key, reason=str(exc))
            self._reset()
            return 0
        _log.info("snapshot loaded", actor=self.key, seq=self.seq, bytes=len(data))
        return self.seq

    def _reset(self) -> None:
        # A snapshot that failed halfway through `_restore` sets nothing (setattr comes last),
        # but start from a fresh actor anyway: the fold must begin from the initial state.
        fresh = type(self.actor)(self.actor.settings)
        for name in type(self.actor).state_fields:
            setattr(self.actor, name, getattr(fresh, name))

    def due(self, applied: int) -> bool:
        if not self.enabled or applied <= self.seq:
            return False
        since = time.monotonic() - self.taken_at
        if since < SPACING * self.encode_seconds:
            return False  # a large state: keep encoding under 1/SPACING of the loop's time
        return applied - self.seq >= self.every_events or since >= self.every_seconds

    def maybe_take(self, applied: int) -> None:
        """Between batches (outputs published, state folded): snapshot if due and none is being written."""
        if self.due(applied) and (self._writing is None or self._writing.done()):
            self._writing = asyncio.create_task(self._write(self._encode(applied), applied))

    def _encode(self, applied: int) -> bytes:
        started = time.monotonic()
        data = encode_snapshot(self.actor, applied, self.stream_created)
        self.seq, self.taken_at = applied, time.monotonic()
        self.encode_seconds = self.taken_at - started
        return data

    async def _write(self, data: bytes, seq: int) -> None:
        started = time.monotonic()
        try:
            await self.store.save(self.key, data)
        except BusError as exc:
            _log.warning("snapshot not written", actor=self.key, seq=seq, error=str(exc))
            return
        _log.info("snapshot written", actor=self.key, seq=seq, bytes=len(data),
                  ms=round((time.monotonic() - started) * 1000, 1))

    async def close(self, applied: int) -> None:
        """At a clean stop: let the write under way finish, then snapshot what was folded since."""
        if self._writing is not None:
            await self._writing
        if self.enabled and applied > self.seq:
            await self._write(self._encode(applied), applied)

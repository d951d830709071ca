"""The audit of the event log: the core `ymera audit verify` and the web API's audit status share.

The log checked against itself, against the store writer's signed checkpoints, and against the
stream that still holds the originals; ymera/_audit.py (the command) says what each check catches
and how each kind of finding reads. Here: `audit` and what it returns (`Audit`, `Finding`), and
`audit_dict`, the result as one JSON-able dict (`ymera mcp serve`'s audit tool, `GET /api/audit`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import guard
import store
from bus import Bus, BusError, SealCheck, Unattested, UntrustedEvent, seal_of, stream_seq
from events import ALL_SUBJECTS, Attested, ChainCheckpoint, MalformedEvent, checkpoint_bytes, decode, subject_filter

__all__ = ["Audit", "Finding", "audit", "audit_dict"]


@dataclass(frozen=True)
class Finding:
    kind: str  # altered, reordered, inserted, missing, forged, unattested, checkpoint, chain
    seqs: tuple[int, int]  # first and last seq it concerns
    detail: str

    def __str__(self) -> str:
        first, last = self.seqs
        where = f"seq {first}" if first == last else f"seqs {first}-{last}"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass
class Audit:
    chain: store.AuditReport
    findings: list[Finding] = field(default_factory=list)
    checkpoints: int = 0  # verified
    latest_checkpoint: int | None = None
    compared: int = 0  # stream messages compared with the log
    stream_range: tuple[int, int] | None = None  # first and last seq the stream holds
    stream_error: str | None = None
    not_yet_stored: int = 0  # events past the log's head no checkpoint vouches for

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class _Expected:
    event_id: str
    digest: bytes  # sha256 of the message's bytes


async def audit(log: store.EventLog, bus: Bus | None, keys_dir: Path, pinned_key: str | None = None) -> Audit:
    """The whole audit of `log`; `bus` None (or unreachable): the chain and the log's own checkpoints."""
    result = Audit(chain=await store.verify(log))
    seals = SealCheck(guard.Keyring(keys_dir), attestations=True)
    await _attestations(log, bus, seals)
    if result.chain.broken is not None:
        broken = result.chain.broken
        result.findings.append(Finding("chain", (broken.seq, broken.seq), f"event {broken.event_id}: {broken.reason}"))
    expected: dict[int, _Expected] = {}
    checkpoints: list[ChainCheckpoint] = []
    if bus is not None:
        try:
            expected, checkpoints, result.stream_range = await _read_stream(bus, seals, result)
        except BusError as exc:
            result.stream_error = str(exc)
    if bus is None or result.stream_error is not None or result.stream_range is None:
        # No stream to read them from (out of reach, or holding nothing: another server, a copied log).
        checkpoints = [e for e in await _stored(log, "ChainCheckpoint") if isinstance(e, ChainCheckpoint)]
    trusted = pinned_key or _trusted_key(keys_dir)
    vouched = {c.head_seq: c for c in checkpoints if _signed(c, trusted, result)}
    hashes, rows = await log.in_thread(lambda reader: _compare(reader, expected, vouched, seals, result))
    _check_checkpoints(vouched, hashes, rows, result)
    if expected:
        _missing(expected, rows, max(vouched, default=0), result)
    result.findings.sort(key=lambda f: (f.seqs[0], f.kind))
    return result


# ---- the stream -----------------------------------------------------------------------------------


async def _read_stream(bus: Bus, seals: SealCheck, result: Audit
                       ) -> tuple[dict[int, _Expected], list[ChainCheckpoint], tuple[int, int] | None]:
    """Every message the writer would have stored, by seq; and the checkpoints among them. A
    forged one is a finding."""
    state = await bus.stream_state()
    if state.last_seq < state.first_seq or state.last_seq == 0:
        return {}, [], None
    expected: dict[int, _Expected] = {}
    checkpoints: list[ChainCheckpoint] = []
    seen: set[str] = set()
    async for msg in bus.read_through(ALL_SUBJECTS, state.first_seq):
        try:
            event = bus.decode_msg(msg)
            seals.check(type(event).__name__, msg.subject, msg.data, seal_of(msg.headers))
        except Unattested as exc:
            seq = stream_seq(msg)
            result.findings.append(Finding("unattested", (seq, seq), f"the stream holds a message on {msg.subject}: "
                                                                     f"{exc.reason}"))
        except UntrustedEvent as exc:
            seq = stream_seq(msg)
            result.findings.append(Finding("forged", (seq, seq), f"the stream holds a message on {msg.subject}: "
                                                                 f"{exc.reason}; the store writer rejected it"))
            continue
        except MalformedEvent:
            continue  # rejected: the writer stores no row for it
        if event.id not in seen:
            seen.add(event.id)
            expected[stream_seq(msg)] = _Expected(event.id, hashlib.sha256(msg.data).digest())
            if isinstance(event, ChainCheckpoint):
                checkpoints.append(event)
    return expected, checkpoints, (state.first_seq, state.last_seq)


async def _attestations(log: store.EventLog, bus: Bus | None, seals: SealCheck) -> None:
    """Every attestation the stream and the log hold, for `seals` to check attested events
    against; one that does not verify is left out here and named where its row or message is
    checked."""
    found: list[object] = await _stored(log, "Attested")
    if bus is not None:
        try:
            async for msg in bus.read_through(subject_filter(Attested)):
                try:
                    found.append(decode(msg.data))
                except MalformedEvent:
                    continue
        except BusError:
            pass  # the stream's read proper says so
    for attestation in found:
        if isinstance(attestation, Attested):
            try:
                seals.attest(attestation)
            except UntrustedEvent:
                continue


async def _stored(log: store.EventLog, kind: str) -> list[object]:
    out: list[object] = []
    async for chunk in log.scan("data", types=(kind,)):
        for (data,) in chunk:
            try:
                out.append(decode(data))
            except MalformedEvent:
                continue
    return out


# ---- the checks -----------------------------------------------------------------------------------


def _trusted_key(keys_dir: Path) -> str | None:
    try:
        return (keys_dir / "store.pub").read_text().strip() or None
    except OSError:
        return None


def _signed(checkpoint: ChainCheckpoint, trusted: str | None, result: Audit) -> bool:
    """Whether `checkpoint` is the writer's: its key the trusted one (by key or key id), its signature good."""
    seq = checkpoint.head_seq
    if trusted is not None and trusted not in (checkpoint.public_key, checkpoint.key_id):
        result.findings.append(Finding("checkpoint", (seq, seq), f"signed by key {checkpoint.key_id}, not the store "
                                                                  f"writer's ({guard.key_id(trusted)})"))
        return False
    data = checkpoint_bytes(checkpoint.stream, seq, checkpoint.head_hash)
    if guard.key_id(checkpoint.public_key) != checkpoint.key_id or not guard.verify(checkpoint.public_key, data,
                                                                                     checkpoint.signature):
        result.findings.append(Finding("checkpoint", (seq, seq), "its signature does not verify: forged or altered"))
        return False
    result.checkpoints += 1
    result.latest_checkpoint = max(result.latest_checkpoint or 0, seq)
    return True


def _compare(reader: store.LogReader, expected: dict[int, _Expected], vouched: dict[int, ChainCheckpoint],
             seals: SealCheck, result: Audit) -> tuple[dict[int, bytes], set[int]]:
    """Each row's signature, and each row against the stream's message at its seq; the hashes of
    the rows checkpoints name."""
    by_digest = {e.digest: seq for seq, e in expected.items()}
    first = result.stream_range[0] if result.stream_range is not None else None
    hashes: dict[int, bytes] = {}
    rows: set[int] = set()
    for chunk in reader.scan("seq, id, type, subject, data, hash, seal"):
        for seq, event_id, kind, subject, data, row_hash, sealed in chunk:
            rows.add(seq)
            try:
                seals.check(kind, subject, data, sealed)
            except Unattested as exc:
                result.findings.append(Finding("unattested", (seq, seq), f"event {event_id}: {exc.reason}"))
            except UntrustedEvent as exc:
                result.findings.append(Finding("forged", (seq, seq), f"event {event_id}: {exc.reason}"))
            if seq in vouched:
                hashes[seq] = row_hash
            if first is None or seq < first:
                continue  # the stream no longer holds it: the chain and the checkpoints vouch for it
            result.compared += 1
            want = expected.get(seq)
            digest = hashlib.sha256(data).digest()
            if want is not None and want.digest == digest:
                continue
            elsewhere = by_digest.get(digest)
            if elsewhere is not None and elsewhere != seq:
                result.findings.append(Finding("reordered", (seq, seq), f"holds event {event_id}, which the stream "
                                                                        f"has at seq {elsewhere}"))
            elif want is not None and want.event_id == event_id:
                result.findings.append(Finding("altered", (seq, seq), f"event {event_id}: its bytes differ from the "
                                                                      "stream's"))
            elif want is not None:
                result.findings.append(Finding("altered", (seq, seq), f"holds event {event_id}, where the stream has "
                                                                      f"event {want.event_id}"))
            else:
                result.findings.append(Finding("inserted", (seq, seq), f"event {event_id}: the stream has no such "
                                                                       "event at this seq"))
    return hashes, rows


def _check_checkpoints(vouched: dict[int, ChainCheckpoint], hashes: dict[int, bytes], rows: set[int],
                       result: Audit) -> None:
    head = max(rows, default=0)
    for seq, checkpoint in sorted(vouched.items()):
        row_hash = hashes.get(seq)
        if row_hash is None:
            detail = ("the log has no rows" if not rows else f"the log ends at seq {head}" if seq > head
                      else "the log has no row there")
            result.findings.append(Finding("checkpoint", (seq, seq), f"vouches for the chain's head at seq {seq}, and "
                                                                     f"{detail}"))
        elif row_hash.hex() != checkpoint.head_hash:
            result.findings.append(Finding("checkpoint", (seq, seq), f"the log's hash there is {row_hash.hex()[:16]}…, "
                                                                     f"the signed checkpoint says "
                                                                     f"{checkpoint.head_hash[:16]}…: rewritten"))


def _missing(expected: dict[int, _Expected], rows: set[int], vouched_to: int, result: Audit) -> None:
    """The stream's events with no row: up to the log's head (or a checkpoint past it) missing, beyond
    it not stored yet. Reported in runs of consecutive seqs."""
    head = max(max(rows, default=0), vouched_to)
    gaps = sorted(seq for seq in expected if seq not in rows and seq <= head)
    result.not_yet_stored = sum(1 for seq in expected if seq > head)
    log_head = max(rows, default=0)
    for first, last in _runs(gaps):
        if not rows:
            why = "the log has no rows"
        elif last > log_head:
            why = "cut at the end"
        elif first <= min(rows):
            why = "deleted from the start"
        else:
            why = "deleted"
        count = sum(1 for s in gaps if first <= s <= last)
        result.findings.append(Finding("missing", (first, last), f"{count} events of the stream have no row: {why}"))


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for seq in seqs:
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def audit_dict(result: Audit) -> dict[str, Any]:
    """The audit as one JSON-able dict: the chain, each finding, the checkpoints and the stream compared."""
    report = result.chain
    return {
        "ok": result.ok, "rows": report.rows, "blobs": report.blobs, "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "broken": None if report.broken is None else {"seq": report.broken.seq, "event_id": report.broken.event_id,
                                                      "reason": report.broken.reason},
        "findings": [{"kind": f.kind, "first_seq": f.seqs[0], "last_seq": f.seqs[1], "detail": f.detail}
                     for f in result.findings],
        "checkpoints_verified": result.checkpoints, "latest_checkpoint": result.latest_checkpoint,
        "rows_compared_with_stream": result.compared,
        "stream_range": list(result.stream_range) if result.stream_range is not None else None,
        "stream_error": result.stream_error, "not_yet_stored": result.not_yet_stored,
    }

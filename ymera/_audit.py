"""`ymera audit verify`: the log checked against itself, against the store writer's signed
checkpoints, and against the stream that still holds the originals.

- The chain (`store.verify`): every row's hash links to the one before, its columns and blobs
  agree with its bytes. A log rewritten and re-hashed from the first changed row on passes
  this: the next two checks are what catch it.
- The checkpoints (`ChainCheckpoint`, read from the stream; from the log when the stream is
  out of reach, which an attacker of the file could have deleted): each signed by the writer's
  key (`<keys dir>/store.pub`, or the key id pinned with `--key`), and each agreeing with the
  log: the row at its seq has its hash. A log cut at the end, emptied, or re-hashed disagrees.
- The stream, where it still holds the range: every message the writer would have stored
  (a valid event, signed by its type's actor, not a copy of one stored before) is a row at
  the same seq with the same bytes, and no row is anything else.
- The signatures (bus/_seal.py): every row and every message of the stream whose type an
  actor emits is signed by that actor's key (`<keys dir>/<actor>.pub`), in its seal or, where
  the server enforced who publishes what, by an attestation of that key covering it
  (bus/_attest.py; the attestations, from the stream and the log, are read first).

Findings are reported by kind, each naming its seqs: altered (a row's bytes differ from the
stream's at its seq), reordered (a row holds the event of another seq), inserted (a row the
stream never had), missing (an event of the stream with no row: a gap, a cut at the end, the
start deleted), forged (a row, or a message the stream holds, not signed by the actor its
type belongs to: the store writer rejected such a message, and a row of one was written
into the file), unattested (an event sealed to be attested later that no attestation of its
actor covers: the actor was killed before attesting it, or it was made up), checkpoint (one
the log disagrees with, or one not signed by the writer's key).

The audit itself (`audit`, `Audit`, `Finding`) is in actors/_audit.py, shared with the web API's
audit status; here: what the command prints, and the command.
"""

from __future__ import annotations

import argparse
import sys

import store
from actors import Settings, client_access
from actors._audit import Audit, Finding, audit
from bus import open_local

__all__ = ["Audit", "Finding", "audit", "audit_lines", "cmd_audit_verify"]


def audit_lines(result: Audit, read_stream: bool) -> tuple[list[str], list[str]]:
    """What `ymera audit verify` prints: its summary lines, and its findings (empty when the audit is ok)."""
    report = result.chain
    lines = []
    if report.broken is None:
        lines.append(f"audit: ok, {report.rows} events and {report.blobs} blobs verified, head seq {report.head_seq}, "
                     f"head hash {report.head_hash}" if result.ok else
                     f"audit: chain ok, {report.rows} events and {report.blobs} blobs verified, head seq "
                     f"{report.head_seq}")
    if result.checkpoints:
        many = "s" if result.checkpoints > 1 else ""
        lines.append(f"audit: {result.checkpoints} signed checkpoint{many} verified, the latest at seq "
                     f"{result.latest_checkpoint}")
    if result.stream_range is not None:
        first, last = result.stream_range
        line = f"audit: {result.compared} rows compared with the stream (it holds seqs {first}-{last})"
        if result.not_yet_stored:
            line += f"; {result.not_yet_stored} past the log's head, not stored yet"
        lines.append(line)
    elif result.stream_error is not None:
        lines.append(f"audit: the stream could not be read ({result.stream_error}): checked against the "
                     f"checkpoints the log holds only")
    elif read_stream:
        lines.append("audit: the stream holds no events: checked against the checkpoints the log holds only")
    findings = []
    if report.broken is not None:
        findings.append(f"audit: chain broken at {report.broken} ({report.rows} rows before it verified)")
    findings += [f"audit: {finding}" for finding in result.findings if finding.kind != "chain"]
    return lines, findings


# ---- the command ----------------------------------------------------------------------------------


async def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        if args.no_stream:
            result = await audit(log, None, settings.keys_dir, args.key)
        else:
            connection, server = await open_local(settings, "ymera-audit", client_access(settings))
            try:
                result = await audit(log, connection, settings.keys_dir, args.key)
            finally:
                await connection.close()
                if server is not None:
                    server.stop()
    lines, findings = audit_lines(result, read_stream=not args.no_stream)
    if lines:
        print("\n".join(lines))
    if result.ok:
        return 0
    print("\n".join(findings), file=sys.stderr)
    return 1

"""Who said what: every batch an actor publishes is signed once, and each message carries the
proof that it belongs to the signed batch (the `Ymera-Sig` header, kept by the stream with
the message and by the log beside its row).

One Ed25519 signature per message would cost its emitter ~35 µs and every reader ~115 µs per
message, on these machines: the monitor and the store writer, which read everything, would
stop near 8,700 events/s, below what the engine runs (BENCHMARKS.md, "Signing"). So the
signature covers the root of a Merkle tree over the batch's messages, and a message's seal is

    <MAC>.<key id>.<n>.<i>.<signature of the root, base64>.<proof, base64url>

where n is the batch's size, i the message's place in it, and the proof the sibling hashes
on its path to the root. A reader without the deployment's secret (a client, the audit)
hashes the message up the path until it meets a node it has proven (a message of the same
batch before it), and checks each root's signature once.

An actor reads the MAC instead: keyed BLAKE2b of the message under the emitting actor's MAC
key, which every actor derives from the deployment's secret (`guard.mac_keys`), ~1 µs. Most
of an actor's reading is of batches of one event, and five readers each verifying a signature
per event would cost more than the engine spends on it (BENCHMARKS.md, "Signing"). The MAC
keeps out whoever lacks the secret; the signature also holds an actor that has it (a
compromised executor writing as the distributor passes the other actors' MAC check, and
fails the audit's and the clients' signature check).

    leaf  = sha256(b"L" + subject + b"\\n" + data)[:16]
    node  = sha256(b"N" + left + right)[:16]   an odd node out rises unpaired
    signed: b"ymera-seal-v1\\n" + n (4 bytes, big-endian) + root

Where the server enforces who publishes what, an actor's seal is shorter and its signature
comes after the message, in an attestation (bus/_attest.py); `SealCheck` checks both kinds.

The bus knows the wire format only; the keys are the deployment's (`guard`): a `Signer` makes
signatures, a `Keyring` names the actor a key id belongs to and checks its signatures. What
each actor may emit is `events.EMITTED_BY`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Protocol

from events import ANY_ACTOR, CLIENT, EMITTED_BY, Attested, MalformedEvent, attested_bytes, decode

__all__ = ["ATTESTED_MARK", "SEAL_HEADER", "Keyring", "MacKeys", "SealCheck", "Signer", "Unattested", "UntrustedEvent",
           "leaf", "seal", "seal_of"]

SEAL_HEADER = "Ymera-Sig"
ATTESTED_MARK = "@"  # how an attested seal starts (bus/_attest.py; a batch seal starts with its MAC or a '.')
_SEAL_MARK = SEAL_HEADER.encode() + b":"
_DOMAIN = b"ymera-seal-v1\n"
_MAX_BATCH = 1 << 20
# A tree's hashes are sha256 cut to 128 bits: a forger must find a second preimage (2^128
# work); collisions (2^64) help only whoever signs the batch. Half the header of full hashes.
_HASH = 16
_PROVEN_NODES = 1 << 16


class Signer(Protocol):
    """What signs an actor's batches: its name, its key's id, and base64 signatures."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> str: ...


class Keyring(Protocol):
    """The actors' and clients' public keys: who a key id is (an actor, or a client's
    principal), and whether a signature is theirs."""

    def actor_of(self, key_id: str) -> str | None: ...

    def principal_of(self, key_id: str) -> str | None: ...

    def verify(self, key_id: str, data: bytes, signature: str) -> bool: ...


MacKeys = Callable[[str], bytes]  # an actor's name -> its MAC key


class UntrustedEvent(MalformedEvent):
    """An event its type's actor did not sign: forged, altered, or published by someone else.
    Dropped by every reader; the store writer records it as a `MessageRejected`."""


class Unattested(UntrustedEvent):
    """An event sealed to be attested later (bus/_attest.py) that no attestation covers: its
    actor stopped before attesting it, or someone else made it up."""


def seal(signer: Signer, messages: Sequence[tuple[str, bytes]], mac_key: bytes | None = None) -> list[str]:
    """The seal of each (subject, data) of one batch, in order, under one signature; each with
    its own MAC under `mac_key` (the signer's, derived from the deployment's secret)."""
    n = len(messages)
    levels = [[leaf(subject, data) for subject, data in messages]]
    while len(levels[-1]) > 1:
        levels.append(_up(levels[-1]))
    signature = signer.sign(_signed(n, levels[-1][0]))
    head = f".{signer.key_id}.{n}."
    seals = []
    for i, (subject, data) in enumerate(messages):
        proof, at = [], i
        for level in levels[:-1]:
            sibling = at ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            at //= 2
        tag = _mac(mac_key, subject, data) if mac_key is not None else ""
        seals.append(f"{tag}{head}{i}.{signature}.{base64.urlsafe_b64encode(b''.join(proof)).decode()}")
    return seals


def seal_of(headers: bytes | dict[str, str] | None) -> str | None:
    """A message's seal, from its raw header block (the bus's direct path) or parsed headers."""
    if not headers:
        return None
    if isinstance(headers, dict):
        return headers.get(SEAL_HEADER)
    start = headers.find(_SEAL_MARK)
    if start < 0:
        return None
    start += len(_SEAL_MARK)
    end = headers.find(b"\r\n", start)
    return headers[start:end if end >= 0 else len(headers)].strip().decode("ascii", "replace")


class SealCheck:
    """Checks that an event was signed by the actor its type belongs to (`check`), verifying
    each batch's signature once (the nodes of the trees last proven are remembered).

    `senders_enforced`: the server authenticates every connection and lets each actor publish
    its own events only (bus/_access.py). Then whoever reads an actor's event knows who sent it
    without looking (its seal stays on the message for the log and the audit: an attested one,
    bus/_attest.py), and a client's event must be signed by the client key of the principal it
    names: the deployment knows its clients.

    `attestations`: events sealed to be attested later are checked against the attestations
    given to `attest` first (the audit); without it, such an event is taken only on trust of a
    server that enforces senders."""

    def __init__(self, keyring: Keyring, mac_keys: MacKeys | None = None, *, senders_enforced: bool = False,
                 attestations: bool = False) -> None:
        self.keyring = keyring
        self.mac_keys = mac_keys
        self.clients_sign = senders_enforced
        self.trust_actors = senders_enforced
        # Whether events sealed to be attested later are checked against the attestations
        # `attest` was given (the audit, which reads them all first); in real time they cannot be.
        self.attestations = attestations
        self._proven: dict[bytes, str] = {}  # node of a signed tree -> the key that signed it
        # (key id, epoch) -> the first numbers of its attestations, sorted, and each one's leaves
        self._attested: dict[tuple[str, str], tuple[list[int], dict[int, bytes]]] = {}

    def check(self, kind: str, subject: str, data: bytes, sealed: str | None, event: object = None) -> str | None:
        """The actor who signed it, or for a client's event the principal whose key signed it
        (None where clients need not sign: `senders_enforced`); `UntrustedEvent` saying why
        when its type's actor did not sign it, or a client's `event` is not signed by the key of
        the principal it names."""
        owner = EMITTED_BY.get(kind, CLIENT)
        if owner == CLIENT:
            if not self.clients_sign:
                return None
            return self._client(kind, subject, data, sealed, getattr(event, "principal", None))
        if self.trust_actors:
            return owner
        if owner == ANY_ACTOR:
            return self.attest(event if isinstance(event, Attested) else _attestation(kind, data))
        if not sealed:
            raise UntrustedEvent(f"{kind} is the {owner}'s to emit, and this one is not signed")
        if sealed.startswith(ATTESTED_MARK):
            return self._attested_by(kind, owner, subject, data, sealed)
        tag, _, sealed = sealed.partition(".")
        if (tag and tag.isascii() and self.mac_keys is not None
                and hmac.compare_digest(tag, _mac(self.mac_keys(owner), subject, data))):
            return owner  # made by whoever holds the owner's MAC key: an actor of this deployment
        key = sealed.partition(".")[0]
        signer = self.keyring.actor_of(key)
        if signer is None:
            raise UntrustedEvent(f"{kind} is signed by key {key[:16]!r}, which is no actor's key this deployment "
                                 f"knows")
        if signer != owner:
            raise UntrustedEvent(f"{kind} is the {owner}'s to emit, and this one is signed by the {signer}")
        self._verify(kind, subject, data, sealed)
        return signer

    def attest(self, attestation: Attested) -> str:
        """The actor whose key signed `attestation`, which from now on vouches for the events
        it covers (with `attestations`); `UntrustedEvent` if its key is no actor's, or not the
        actor's it names, or its signature does not verify."""
        key, epoch, first, leaves = attestation.key_id, attestation.epoch, attestation.first, attestation.leaves
        signer = self.keyring.actor_of(key)
        if signer is None or signer != attestation.actor:
            whose = "no actor's key this deployment knows" if signer is None else f"the {signer}'s"
            raise UntrustedEvent(f"Attested names the {attestation.actor} and is signed by key {key[:16]!r}, "
                                 f"{whose}")
        firsts, by_first = self._attested.get((key, epoch), ([], {}))
        if by_first.get(first) == leaves:
            return signer  # seen and verified before (the stream's copy, then the log's)
        if (len(leaves) % _HASH or first < 0
                or not self.keyring.verify(key, attested_bytes(key, epoch, first, leaves), attestation.signature)):
            raise UntrustedEvent("Attested's signature does not verify: the attestation was altered, or forged")
        if self.attestations:
            if first not in by_first:
                bisect.insort(firsts, first)
            if len(leaves) > len(by_first.get(first, b"")):  # a run's own and its journal's may overlap
                by_first[first] = leaves
            self._attested[(key, epoch)] = (firsts, by_first)
        return signer

    def _attested_by(self, kind: str, owner: str, subject: str, data: bytes, sealed: str) -> str:
        """That an attestation signed by `owner`'s key covers this message (bus/_attest.py)."""
        key, _, rest = sealed[1:].partition(".")
        epoch, _, number_text = rest.partition(".")
        signer = self.keyring.actor_of(key)
        if signer is None:
            raise UntrustedEvent(f"{kind} is sealed with key {key[:16]!r}, which is no actor's key this deployment "
                                 "knows")
        if signer != owner:
            raise UntrustedEvent(f"{kind} is the {owner}'s to emit, and this one is sealed with the {signer}'s key")
        if not self.attestations:
            raise UntrustedEvent(f"{kind} is sealed to be attested later, which this reader takes only from a "
                                 "server that enforces who publishes what")
        if not number_text.isdigit():
            raise UntrustedEvent(f"{kind} has a malformed signature header")
        number = int(number_text)
        firsts, by_first = self._attested.get((key, epoch), ([], {}))
        # The nearest attestation starting at or before it that reaches it: a journal's
        # (bus/_journal.py) may start before a run's own and reach further.
        nearest = bisect.bisect_right(firsts, number) - 1
        at = next((i for i in range(nearest, max(nearest - 64, -1), -1)
                   if number < firsts[i] + len(by_first[firsts[i]]) // _HASH), -1)
        if at < 0:
            raise Unattested(f"{kind} is message {number} of the {owner}'s run {epoch}, and no attestation of its "
                             f"key covers it: the {owner} stopped before attesting it (killed), or it was made up")
        start = (number - firsts[at]) * _HASH
        if by_first[firsts[at]][start:start + _HASH] != leaf(subject, data):
            raise UntrustedEvent(f"{kind} differs from what the {owner} attested (message {number} of run "
                                 f"{epoch}): altered, or forged")
        return owner

    def _client(self, kind: str, subject: str, data: bytes, sealed: str | None, principal: str | None) -> str:
        """The principal whose client key signed a client's event."""
        if not sealed:
            raise UntrustedEvent(f"{kind} is not signed: this deployment takes a client's events only signed by "
                                 "its client key, which names its principal")
        sealed = sealed.partition(".")[2]
        key = sealed.partition(".")[0]
        signer = self.keyring.principal_of(key)
        if signer is None:
            raise UntrustedEvent(f"{kind} is signed by key {key[:16]!r}, which is no client key this deployment "
                                 "knows (`ymera clients add NAME` makes one)")
        if principal is not None and principal != signer:
            raise UntrustedEvent(f"{kind} names principal {principal!r} and is signed by client {signer!r}: a "
                                 "principal is the client key that signs")
        self._verify(kind, subject, data, sealed)
        return signer

    def _verify(self, kind: str, subject: str, data: bytes, sealed: str) -> None:
        """That the seal proves this message part of a batch its key signed. The path is hashed
        up only until it meets a node already proven (a message before it of the same batch):
        in a batch read in order, two hashes a message, and one signature check a batch."""
        try:
            key, n_text, i_text, signature, proof_text = sealed.split(".")
            n, i = int(n_text), int(i_text)
            proof = base64.urlsafe_b64decode(proof_text)
        except (ValueError, binascii.Error):
            raise UntrustedEvent(f"{kind} has a malformed signature header") from None
        if not 0 <= i < n <= _MAX_BATCH or len(proof) % _HASH:
            raise UntrustedEvent(f"{kind} has a malformed signature header")
        proven = self._proven
        node, at, width, used = leaf(subject, data), i, n, 0
        path = [node]
        while width > 1 and proven.get(node) != key:
            sibling = at ^ 1
            if sibling < width:
                if used + _HASH > len(proof):
                    raise UntrustedEvent(f"{kind} has a malformed signature header")
                other = proof[used:used + _HASH]
                used += _HASH
                node = _node(other, node) if at & 1 else _node(node, other)
                path.append(node)
            at, width = at // 2, (width + 1) // 2
        if proven.get(node) == key:
            for proven_node in path:  # what it took to get here: the next message stops sooner
                proven[proven_node] = key
            return
        if used != len(proof) or not self.keyring.verify(key, _signed(n, node), signature):
            raise UntrustedEvent(f"{kind}'s signature does not verify: the message was altered, or the "
                                 f"signature forged")
        for proven_node in path:  # each now shown to be in a tree `key` signed
            proven[proven_node] = key
        while len(proven) > _PROVEN_NODES:
            del proven[next(iter(proven))]


def _attestation(kind: str, data: bytes) -> Attested:
    try:
        event = decode(data)
    except MalformedEvent:
        raise UntrustedEvent(f"{kind} is no valid attestation") from None
    if not isinstance(event, Attested):
        raise UntrustedEvent(f"{kind} is no valid attestation")
    return event


def _mac(key: bytes, subject: str, data: bytes) -> str:
    """A message's MAC: keyed BLAKE2b (a MAC by design, and ~3x faster here than HMAC-SHA256),
    128 bits over what its leaf covers, in hex."""
    return hashlib.blake2b(b"L" + subject.encode() + b"\n" + data, key=key, digest_size=16).hexdigest()


def leaf(subject: str, data: bytes) -> bytes:
    """A message's leaf: what a seal's tree and an attestation (bus/_attest.py) are built of."""
    return hashlib.sha256(b"L" + subject.encode() + b"\n" + data).digest()[:_HASH]


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"N" + left + right).digest()[:_HASH]


def _up(level: list[bytes]) -> list[bytes]:
    paired = [_node(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def _signed(n: int, root: bytes) -> bytes:
    return _DOMAIN + n.to_bytes(4, "big") + root

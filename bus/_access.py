"""Who may connect to NATS and what each may publish: the server's side of "who may say what".

Every connection authenticates with an Ed25519 key as a NATS nkey (the key it signs its
events with, `guard.Identity`), and the server lets it publish only what its role may:

- an actor: its own event subjects (`events.EMITTED_BY`), JetStream's API (but deleting or
  purging the stream or a message of it), acks, the blob, snapshot and rate buckets, replies;
- a client: submissions, cancels and ratings; reading the stream through consumers of its own
  (never an actor's: it may not create, delete, pull from or ack on one); blobs; replies.

So a client cannot publish a `TaskSucceeded`, nor an executor a `TaskReady`: the server
refuses the publish (a permissions violation), and nothing reaches the stream. Which keys
the server knows is the deployment's (`guard.authorization`); this module turns users into
the server's `authorization` block, for the embedded server's config file and for an
operator's own server (`ymera nats authorization`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from events import ALL_SUBJECTS, ANY_ACTOR, CLIENT, EMITTED_BY, EVENT_TYPES, subject_filter

from ._blobs import BLOB_BUCKET
from ._limits import RATE_BUCKET
from ._snapshots import SNAPSHOT_BUCKET
from ._stream import STREAM

__all__ = ["ACTOR_ROLES", "Credentials", "User", "authorization_block", "permissions"]

Role = str  # an actor's name (`events.EMITTED_BY`'s values), or `events.CLIENT`
# Every actor that emits events, in the order EMITTED_BY names them, and so has a NATS user.
ACTOR_ROLES: tuple[str, ...] = tuple(dict.fromkeys(a for a in EMITTED_BY.values() if a not in (CLIENT, ANY_ACTOR)))


class Credentials(Protocol):
    """Who a connection is to the server: its key as a NATS user nkey, and the answer to the
    server's challenge (the nonce signed, base64), as nats-py's `signature_cb` returns it."""

    @property
    def name(self) -> str: ...

    @property
    def nkey(self) -> str: ...

    def sign_nonce(self, nonce: str) -> bytes: ...


class User(NamedTuple):
    """One key the server lets in, and the role whose permissions it gets."""

    nkey: str
    role: Role
    name: str  # whose key it is, for the reader of the config (a comment)


def _event_subjects(role: Role) -> list[str]:
    mine = (role,) if role == CLIENT else (role, ANY_ACTOR)
    return [subject_filter(EVENT_TYPES[kind]) for kind, owner in EMITTED_BY.items() if owner in mine]


def permissions(role: Role, stream: str = STREAM) -> dict[str, dict[str, list[str]]]:
    """What a connection of `role` may publish and subscribe to, as nats-server's config says it."""
    api = "$JS.API"
    if role != CLIENT:
        return {
            "publish": {
                "allow": [*_event_subjects(role), f"{api}.>", "$JS.ACK.>", "$JS.FC.>", f"$O.{BLOB_BUCKET}.>",
                          f"$O.{SNAPSHOT_BUCKET}.>", f"$KV.{RATE_BUCKET}.>", "_INBOX.>"],
                "deny": [f"{api}.STREAM.DELETE.{stream}", f"{api}.STREAM.PURGE.{stream}",
                         f"{api}.STREAM.MSG.DELETE.{stream}"],
            },
            "subscribe": {"allow": [">"]},
        }
    # An actor's durable consumer is its own: a client may not make, change, delete, drain or
    # ack on it (consumers are named after their actors: actors/_runtime.py, the executor).
    theirs = [subject for actor in ACTOR_ROLES for subject in (
        f"{api}.CONSUMER.CREATE.{stream}.{actor}", f"{api}.CONSUMER.CREATE.{stream}.{actor}.>",
        f"{api}.CONSUMER.DURABLE.CREATE.{stream}.{actor}", f"{api}.CONSUMER.DELETE.{stream}.{actor}",
        f"{api}.CONSUMER.MSG.NEXT.{stream}.{actor}", f"$JS.ACK.{stream}.{actor}.>")]
    blobs = f"OBJ_{BLOB_BUCKET}"
    return {
        "publish": {
            "allow": [*_event_subjects(CLIENT), f"{api}.INFO", f"{api}.STREAM.INFO.*", f"{api}.STREAM.NAMES",
                      f"{api}.STREAM.CREATE.{stream}", f"{api}.STREAM.CREATE.{blobs}", f"{api}.STREAM.MSG.GET.*",
                      f"{api}.DIRECT.GET.>", f"{api}.CONSUMER.CREATE.>", f"{api}.CONSUMER.INFO.>",
                      f"{api}.CONSUMER.DELETE.>", f"{api}.CONSUMER.MSG.NEXT.>", "$JS.ACK.>", "$JS.FC.>",
                      f"$O.{BLOB_BUCKET}.>", f"{api}.STREAM.PURGE.{blobs}", "_INBOX.>"],
            "deny": theirs,
        },
        "subscribe": {"allow": ["_INBOX.>", f"$O.{BLOB_BUCKET}.>", ALL_SUBJECTS]},
    }


def authorization_block(users: Iterable[User], stream: str = STREAM) -> str:
    """nats-server's `authorization { users = [...] }` for `users`, each with its role's permissions."""
    lines = ["authorization {", "  users = ["]
    for user in users:
        lines.append(f"    # {user.name} ({user.role})")
        rules = json.dumps(permissions(user.role, stream))
        lines.append(f"    {{nkey: {json.dumps(user.nkey)}, permissions: {rules}}}")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)

"""The deployment's NATS users: one per key in its keys directory, with its role's permissions.

Each actor authenticates as its own signing key (`<actor>.key`; an actor run on another host
as `<actor>.<label>.key`, whose public half the operator copies here), each client as its
client key (`client.<principal>.key`, made by `ymera clients add PRINCIPAL`; this host's own
commands use `client.local`). The server's authorization lists their public halves
(`bus.authorization_block`): it never holds a secret, and a key it does not list cannot
connect.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import bus
from events import CLIENT

from ._identity import Identity, KeyFileError, nkey_of

__all__ = ["LOCAL_CLIENT", "authorization", "client_identity", "make_identities", "nats_users"]

LOCAL_CLIENT = "local"  # the principal of this host's own commands (`client.local.key`)


def make_identities(keys_dir: Path, actors: tuple[str, ...] = bus.ACTOR_ROLES) -> None:
    """Every actor's key and this host's client key, made where missing: a server started with
    the authorization then knows every connection this host will open."""
    for name in (*actors, f"{CLIENT}.{LOCAL_CLIENT}"):
        Identity.load_or_create(keys_dir, name)


def client_identity(keys_dir: Path, key_file: Path | None = None) -> Identity:
    """The client key a process submits, cancels and rates as: `key_file` (a
    `client.<principal>.key`), else this host's `client.local`, made on first use."""
    if key_file is None:
        return Identity.load_or_create(keys_dir, f"{CLIENT}.{LOCAL_CLIENT}")
    kind, _, principal = key_file.name.removesuffix(".key").partition(".")
    if kind != CLIENT or not principal or "." in principal or not key_file.name.endswith(".key"):
        raise KeyFileError(f"client key {key_file}: a client key file is named client.<principal>.key "
                           "(`ymera clients add PRINCIPAL` makes one)")
    if not key_file.is_file():
        raise KeyFileError(f"client key {key_file}: no such file")
    return Identity.load_or_create(key_file.parent, f"{CLIENT}.{principal}")


def nats_users(keys_dir: Path) -> list[bus.User]:
    """A NATS user for every actor's and client's public key in `keys_dir`, by its file's name."""
    users = []
    for path in sorted(keys_dir.glob("*.pub")):
        role = path.name.split(".")[0]
        if role != CLIENT and role not in bus.ACTOR_ROLES:
            continue  # not a key anyone connects with
        try:
            nkey = nkey_of(_raw(path))
        except ValueError:
            continue  # not a public key: nobody can connect with it
        users.append(bus.User(nkey, role, path.name.removesuffix(".pub")))
    return users


def authorization(keys_dir: Path, stream: str = bus.STREAM) -> str:
    """The server's authorization block for this deployment: its keys made first if missing."""
    make_identities(keys_dir)
    return bus.authorization_block(nats_users(keys_dir), stream)


def _raw(path: Path) -> bytes:
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
    except (OSError, binascii.Error) as exc:
        raise ValueError(str(exc)) from None
    if len(raw) != 32:
        raise ValueError(f"{path}: not an Ed25519 public key")
    return raw

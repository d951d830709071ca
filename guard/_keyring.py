"""The actors' and clients' public keys, as readers of the stream check signatures with them (`bus.Keyring`).

They are the `*.pub` files of the deployment's keys directory: `<actor>.pub`, made beside
each actor's private key on its first start, and `<actor>.<label>.pub` for another host's
key of the same actor (an operator copies the public halves between hosts; the private ones
never leave theirs). A client's key is `client.<principal>.pub` (`ymera clients add`): the
principal its events name must be that one. A key id the ring does not know is looked up again in the directory
only if the directory changed since it was read: an actor started after this reader made
its key, and a stream of made-up key ids costs a `stat` each.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from events import CLIENT

from ._identity import key_id

__all__ = ["Keyring", "mac_keys"]


class Keyring:
    """Key id -> (actor, public key), read from `keys_dir`'s `*.pub` files; a client key's
    principal."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self._keys: dict[str, tuple[str, Ed25519PublicKey]] = {}
        self._principals: dict[str, str] = {}  # a client key's id -> its principal
        self._read_at: int | None = None
        self._read()

    def actor_of(self, key: str) -> str | None:
        """The actor whose key `key` is; None if no key file here has that id."""
        found = self._keys.get(key)
        if found is None and self._changed():
            self._read()
            found = self._keys.get(key)
        return found[0] if found else None

    def principal_of(self, key: str) -> str | None:
        """The principal whose client key `key` is; None if it is no client's key here."""
        if key not in self._keys and self._changed():
            self._read()
        return self._principals.get(key)

    def verify(self, key: str, data: bytes, signature: str) -> bool:
        """Whether `signature` (base64) over `data` was made by the key `key` names."""
        found = self._keys.get(key)
        if found is None:
            return False
        try:
            found[1].verify(base64.b64decode(signature, validate=True), data)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def actors(self) -> dict[str, str]:
        """Every key id known, with its actor."""
        return {key: actor for key, (actor, _) in self._keys.items()}

    def _changed(self) -> bool:
        try:
            return self.keys_dir.stat().st_mtime_ns != self._read_at
        except OSError:
            return False

    def _read(self) -> None:
        try:
            # Before the listing: a key made during it is read next time.
            self._read_at = self.keys_dir.stat().st_mtime_ns
            files = sorted(self.keys_dir.glob("*.pub"))
        except OSError:
            return
        for path in files:
            try:
                text = path.read_text().strip()
                public = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
            except (OSError, binascii.Error, ValueError):
                continue  # not a public key: no event can be signed by it
            names = path.name.split(".")
            self._keys[key_id(text)] = (names[0], public)
            if names[0] == CLIENT and len(names) == 3:
                self._principals[key_id(text)] = names[1]


def mac_keys(secret: bytes) -> Callable[[str], bytes]:
    """Each actor's MAC key, derived from the deployment's secret (`<keys dir>/ids.key`, which
    every actor holds): what an actor checks another's batches with, faster than a signature
    (bus/_seal.py). Whoever lacks the secret can make none of them."""
    @functools.cache
    def key_of(actor: str) -> bytes:
        return hmac.digest(secret, b"ymera-seal-mac\n" + actor.encode(), "sha256")
    return key_of

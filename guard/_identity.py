"""Ed25519 identities (`cryptography`): a private key per signer in the deployment's keys
directory (`<data dir>/keys`, or `YMERA_KEYS_DIR`), made on first use, readable by its owner
only; its public half beside it, for anyone who verifies.

    keys/store.key   the store writer's private key (32 raw bytes, base64), mode 0600
    keys/store.pub   its public key (32 raw bytes, base64)

A key id is the first 16 hex digits of the sha256 of the public key: what a signature names
so a verifier can tell which key made it, and an operator can pin.

The same key is who the signer is to NATS: its public half, as a NATS user nkey (`nkey`), is
what the server's authorization lists, and the signer answers the server's challenge with it
(`sign_nonce`). What it signs for Ymera always holds a newline (`ymera-seal-v1\n...`,
`ymera-checkpoint\n...`), which no NATS nonce (base64url) can, so neither signature can be
passed off as the other.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from events import YmeraError

__all__ = ["Identity", "KeyFileError", "id_key", "key_id", "nkey_of", "verify"]

_NONCE = re.compile(r"[A-Za-z0-9_-]{8,128}")
_NKEY_USER = 20 << 3  # the prefix byte of a NATS user's public nkey: base32 'U...'


class KeyFileError(YmeraError):
    """A key file that cannot be used, in one line: the file and what is wrong."""


class Identity:
    """One signer: its name, its private key, and the public key others verify with."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        self.name = name
        self._private = private
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = base64.b64encode(raw).decode()
        self.key_id = key_id(self.public_key)
        self.nkey = nkey_of(raw)

    @classmethod
    def generate(cls, name: str) -> Identity:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, keys_dir: Path, name: str) -> Identity:
        """`name`'s identity from `keys_dir`, made there (0600, the directory 0700) if it has none."""
        path = keys_dir / f"{name}.key"
        raw, made = _key_file(path, lambda: Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        try:
            private = Ed25519PrivateKey.from_private_bytes(raw or b"")
        except ValueError:
            raise KeyFileError(f"key file {path}: not an Ed25519 private key (32 bytes, base64)") from None
        identity = cls(name, private)
        public = keys_dir / f"{name}.pub"
        if made or not public.exists():  # written whole, then renamed: a reader never sees half of it
            partial = public.with_name(f".{public.name}.{os.getpid()}")
            partial.write_text(identity.public_key + "\n")
            partial.replace(public)
        return identity

    def sign(self, data: bytes) -> str:
        """The signature of `data`, base64."""
        return base64.b64encode(self._private.sign(data)).decode()

    def sign_nonce(self, nonce: str) -> bytes:
        """The answer to a NATS server's challenge (its nonce signed, base64), as nats-py's
        `signature_cb` returns it. A nonce that is no base64url token is refused: a server
        must not get anything else signed."""
        if not _NONCE.fullmatch(nonce):
            raise KeyFileError(f"{self.name}: the NATS server's nonce {nonce[:40]!r} is not a base64url token; "
                               "not signing it")
        return base64.b64encode(self._private.sign(nonce.encode()))


def nkey_of(public_key: bytes) -> str:
    """A raw Ed25519 public key as a NATS user nkey: base32 of the user prefix, the key and its
    CRC-16/XMODEM (little-endian), as `nsc` and the nkeys libraries write it."""
    body = bytes([_NKEY_USER]) + public_key
    return base64.b32encode(body + binascii.crc_hqx(body, 0).to_bytes(2, "little")).decode()


def key_id(public_key: str) -> str:
    """The id of a public key (base64): the first 16 hex digits of its sha256."""
    with contextlib.suppress(binascii.Error, ValueError):
        return hashlib.sha256(base64.b64decode(public_key, validate=True)).hexdigest()[:16]
    return hashlib.sha256(public_key.encode()).hexdigest()[:16]


def verify(public_key: str, data: bytes, signature: str) -> bool:
    """Whether `signature` (base64) is `public_key`'s (base64) over `data`."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def id_key(keys_dir: Path) -> bytes:
    """The deployment's key for derived event ids (`events.derive_id`): `ids.key` in `keys_dir`
    (32 random bytes, base64, mode 0600), made if there is none."""
    path = keys_dir / "ids.key"
    key, _ = _key_file(path, lambda: os.urandom(32))
    if key is None or len(key) < 16:
        raise KeyFileError(f"key file {path}: not an id key (32 random bytes, base64)")
    return key


def _key_file(path: Path, new: Callable[[], bytes]) -> tuple[bytes | None, bool]:
    """The bytes the key file at `path` holds (base64 in the file; None when it is not base64),
    and whether it was made here, from `new()` (mode 0600, its directory 0700), for want of one.
    Of processes starting together, one makes it and the others read it, whole: it is written to
    a file of this process's own and then linked into place, which fails if another got there
    first (a file created in place could be read empty before it was written). A file others
    may read is refused."""
    made = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(base64.b64encode(new()) + b"\n")
            os.link(partial, path)
            made = True
        except FileExistsError:
            pass  # another process made it: read theirs
        except OSError as exc:
            raise KeyFileError(f"key file {path}: cannot be made: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot be read: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path}: readable by others (mode {stat.S_IMODE(mode):04o}): chmod 600 {path}")
    try:
        return base64.b64decode(text.strip(), validate=True), made
    except (binascii.Error, ValueError):
        return None, made

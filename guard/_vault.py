"""API keys encrypted at rest: AES-256-GCM under a key-encryption key (KEK) kept apart from
them, so a `.env` file, a backup of it or a settings dump that leaks leaks no provider key.

    ymera-enc:v1:<kid>:<base64url(nonce ‖ ciphertext ‖ tag)>

<kid> names the KEK it was made under (the first 16 hex digits of the KEK's sha256), so a ring
of KEKs decrypts tokens made under any of them; the nonce is 96 random bits per token; the
header `ymera-enc:v1:<kid>` is the associated data, so a token whose key id or version was
edited does not decrypt.

The ring: the current KEK, which encrypts, and the retired ones, which only decrypt.

    YMERA_KEK                 the current KEK (32 random bytes, base64), when set
    <keys dir>/kek.key        else this one (mode 0600, made by the first `ymera keys encrypt`)
    <keys dir>/kek-<kid>.key  retired KEKs, kept by `ymera keys rotate` until `ymera keys retire`

Rotation makes a new `kek.key` and keeps the old one as `kek-<kid>.key` before any token is
re-encrypted, so every token decrypts at every moment: nothing has to stop while it runs.

YMERA_KEK is read here from the process's environment (or the mapping the caller passes, as
`config.load_settings` takes one), not from `.env` and not into `Settings`: settings are
logged and printed, and a KEK beside the tokens it protects would protect nothing.
No message raised here holds a key or a plaintext: key ids and variable names only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config import Settings
from events import YmeraError

from ._identity import KeyFileError, _key_file

__all__ = ["KEK_ENV", "TOKEN_PREFIX", "KeyRing", "NoKek", "TokenInvalid", "UnknownKeyId", "VaultError",
           "decrypt_api_key", "decrypt_provider_keys", "encrypt_api_key", "is_encrypted", "kek_id",
           "retire_kek", "rotate_kek", "token_key_id"]

KEK_ENV = "YMERA_KEK"
TOKEN_PREFIX = "ymera-enc:"
_VERSION = "v1"
CURRENT_FILE = "kek.key"
_RETIRED = re.compile(r"kek-([0-9a-f]{16})\.key")
_KID = re.compile(r"[0-9a-f]{16}")
_NONCE = 12  # 96 bits, GCM's own size
_TAG = 16
_KEK_SIZE = 32  # AES-256
_SHAPE = f"{TOKEN_PREFIX}{_VERSION}:<key id>:<data>"


class VaultError(YmeraError):
    """An encrypted API key, or a key-encryption key, that cannot be used. `name` is what the
    message calls the token (its variable's name, when known); no message holds a key."""

    def __init__(self, message: str, name: str | None = None, key_id: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.key_id = key_id


class NoKek(VaultError):
    """There is no key-encryption key: YMERA_KEK is unset and the keys directory has no `kek.key`."""


class UnknownKeyId(VaultError):
    """A token made under a KEK the ring does not hold (retired and dropped, or another deployment's)."""


class TokenInvalid(VaultError):
    """A token that is not one, was cut short, or was altered: it does not decrypt."""


def kek_id(kek: bytes) -> str:
    """The id of a KEK: the first 16 hex digits of its sha256 (the key itself stays secret)."""
    return hashlib.sha256(kek).hexdigest()[:16]


class KeyRing:
    """The KEKs a process may use, by id: `current` encrypts (None: only decrypting is possible),
    every one decrypts. `where` says where they came from, for messages."""

    def __init__(self, keys: Mapping[str, bytes], current: str | None, where: str) -> None:
        self._keys = dict(keys)
        self.current = current
        self.where = where

    def __repr__(self) -> str:  # never the keys
        return f"KeyRing(current={self.current!r}, ids={self.ids!r})"

    @property
    def ids(self) -> list[str]:
        return sorted(self._keys)

    def key(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)

    @classmethod
    def load(cls, keys_dir: Path, environ: Mapping[str, str] | None = None, *, create: bool = False) -> KeyRing:
        """The ring of this deployment: YMERA_KEK or `kek.key` as the current KEK (`kek.key` made,
        0600, when `create` and there is neither), and every `kek-<kid>.key` in `keys_dir`.
        A key file others may read is refused (`KeyFileError`), as every key file is."""
        environ = os.environ if environ is None else environ
        keys: dict[str, bytes] = {}
        current: str | None = None
        if environ.get(KEK_ENV):
            kek = _decode_kek(environ[KEK_ENV])
            if kek is None:
                raise VaultError(f"{KEK_ENV} is not a key-encryption key: it must be 32 random bytes, base64 "
                                 "(e.g. the output of `openssl rand -base64 32`)")
            current = kek_id(kek)
            keys[current] = kek
        path = keys_dir / CURRENT_FILE
        if path.exists() or (create and current is None):
            kek = _read_kek(path)
            keys[kek_id(kek)] = kek
            current = current or kek_id(kek)
        if keys_dir.is_dir():
            for retired in sorted(keys_dir.iterdir()):
                if (match := _RETIRED.fullmatch(retired.name)) is not None:
                    kek = _read_kek(retired)
                    if kek_id(kek) != match[1]:
                        raise KeyFileError(f"key file {retired}: holds the KEK {kek_id(kek)}, not {match[1]} as "
                                           "its name says")
                    keys.setdefault(match[1], kek)
        where = f"{KEK_ENV} and {keys_dir}" if environ.get(KEK_ENV) else str(keys_dir)
        return cls(keys, current, where)


def is_encrypted(value: str) -> bool:
    """Whether `value` is a token to decrypt (it starts with `ymera-enc:`), not a plain key."""
    return value.startswith(TOKEN_PREFIX)


def token_key_id(token: str, name: str = "encrypted API key") -> str:
    """The id of the KEK `token` was made under; `TokenInvalid` when it is no token."""
    return _parse(token, name)[0]


def encrypt_api_key(plaintext: str, ring: KeyRing) -> str:
    """`plaintext` as a token under the ring's current KEK."""
    if ring.current is None:
        raise NoKek(_no_kek(ring))
    if not plaintext:
        raise VaultError("an empty API key cannot be encrypted")
    if is_encrypted(plaintext):
        raise VaultError(f"the API key is already encrypted (it starts with {TOKEN_PREFIX})")
    kek = ring.key(ring.current)
    assert kek is not None  # the ring holds its current key
    header = f"{TOKEN_PREFIX}{_VERSION}:{ring.current}"
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(kek).encrypt(nonce, plaintext.encode(), header.encode())
    return f"{header}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


def decrypt_api_key(token: str, ring: KeyRing, *, name: str = "encrypted API key") -> str:
    """The API key `token` holds. `TokenInvalid` for a token cut short, altered or malformed;
    `UnknownKeyId` for one made under a KEK the ring does not hold; `NoKek` when there is no ring."""
    key_id, data = _parse(token, name)
    kek = ring.key(key_id)
    if kek is None:
        if not ring.ids:
            raise NoKek(f"{name}: encrypted under key id {key_id}, and {_no_kek(ring)}", name, key_id)
        raise UnknownKeyId(f"{name}: encrypted under key id {key_id}, which the key ring ({ring.where}) does not "
                           f"hold (it holds {', '.join(ring.ids)}): was that KEK retired, or is the token another "
                           "deployment's?", name, key_id)
    try:
        plain = AESGCM(kek).decrypt(data[:_NONCE], data[_NONCE:], token.rpartition(":")[0].encode())
    except InvalidTag:
        raise TokenInvalid(f"{name}: does not decrypt under key id {key_id}: the token was altered or cut short",
                           name, key_id) from None
    return plain.decode()


def decrypt_provider_keys(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    """`settings` with every provider key that is a token (`<PREFIX>_API_KEY[_<n>]=ymera-enc:...`)
    decrypted; the same object, and no key file read, when none is. An error names the variable."""
    if not any(is_encrypted(key) for env in settings.providers.values() for _, key in env.keys):
        return settings
    ring = KeyRing.load(settings.keys_dir, environ)
    providers = {prefix: msgspec.structs.replace(env, keys=tuple(
                     (n, decrypt_api_key(key, ring, name=f"{prefix}_API_KEY{f'_{n}' if n else ''}")
                      if is_encrypted(key) else key) for n, key in env.keys))
                 for prefix, env in settings.providers.items()}
    return msgspec.structs.replace(settings, providers=providers)


def rotate_kek(keys_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[KeyRing, str]:
    """Make a new current KEK in `keys_dir`, the old one kept as `kek-<kid>.key`: the new ring,
    and the old KEK's id. The retired copy is written before `kek.key` is replaced (atomically),
    so a process loading the ring at any moment decrypts every token."""
    environ = os.environ if environ is None else environ
    if environ.get(KEK_ENV):
        raise VaultError(f"the current KEK comes from {KEK_ENV}, which this command cannot change: unset it to "
                         f"rotate the key files in {keys_dir}, or set a new {KEK_ENV} yourself")
    ring = KeyRing.load(keys_dir, environ)
    old = ring.current
    old_kek = ring.key(old) if old is not None else None
    if old is None or old_kek is None:
        raise NoKek(f"nothing to rotate: {_no_kek(ring)}")
    kept, _ = _key_file(keys_dir / f"kek-{old}.key", lambda: old_kek)
    if kept != old_kek:
        raise KeyFileError(f"key file {keys_dir / f'kek-{old}.key'}: does not hold the KEK {old}")
    new_kek = os.urandom(_KEK_SIZE)
    staged = keys_dir / f".kek-{kek_id(new_kek)}.new"
    _key_file(staged, lambda: new_kek)
    os.replace(staged, keys_dir / CURRENT_FILE)
    return KeyRing.load(keys_dir, environ), old


def retire_kek(keys_dir: Path, key_id: str, environ: Mapping[str, str] | None = None, *,
               check: Callable[[], None] | None = None) -> Path:
    """Remove the retired KEK `key_id` from `keys_dir` (its file's path); the current one is refused.
    Whether tokens still need it is the caller's to say: `check` raises to refuse, once the key
    is known to be a retired one."""
    if not _KID.fullmatch(key_id):
        raise VaultError(f"{key_id!r} is not a key id (16 hex digits, as `ymera keys rotate` prints them)")
    ring = KeyRing.load(keys_dir, environ)
    if key_id == ring.current:
        raise VaultError(f"key id {key_id} is the current KEK: rotate first (`ymera keys rotate`), then retire it")
    path = keys_dir / f"kek-{key_id}.key"
    if not path.exists():
        retired = [k for k in ring.ids if k != ring.current]
        raise UnknownKeyId(f"no retired KEK {key_id} in {keys_dir} (retired: {', '.join(retired) or 'none'})",
                           key_id=key_id)
    if check is not None:
        check()
    path.unlink()
    return path


def _parse(token: str, name: str) -> tuple[str, bytes]:
    """(key id, nonce ‖ ciphertext ‖ tag) of a token; `TokenInvalid` saying what is wrong with it."""
    if not is_encrypted(token):
        raise TokenInvalid(f"{name}: not a {TOKEN_PREFIX} token: expected {_SHAPE}", name)
    parts = token.split(":")
    if len(parts) >= 3 and parts[1] != _VERSION:
        raise TokenInvalid(f"{name}: a {TOKEN_PREFIX} token of version {parts[1][:8]!r}; this Ymera reads "
                           f"{_VERSION}", name)
    if len(parts) != 4 or not _KID.fullmatch(parts[2]):
        raise TokenInvalid(f"{name}: not a whole {TOKEN_PREFIX} token (cut short?): expected {_SHAPE}", name)
    key_id, text = parts[2], parts[3]
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        data = b""
    if len(data) <= _NONCE + _TAG:
        raise TokenInvalid(f"{name}: the token under key id {key_id} is cut short or altered: its data is not "
                           f"a nonce, a ciphertext and a tag", name, key_id)
    return key_id, data


def _read_kek(path: Path) -> bytes:
    raw, _ = _key_file(path, lambda: os.urandom(_KEK_SIZE))
    if raw is None or len(raw) != _KEK_SIZE:
        raise KeyFileError(f"key file {path}: not a key-encryption key (32 random bytes, base64)")
    return raw


def _decode_kek(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _KEK_SIZE else None


def _no_kek(ring: KeyRing) -> str:
    return (f"there is no key-encryption key: set {KEK_ENV} in the environment (32 random bytes, base64; not in "
            f".env), or make {CURRENT_FILE} in {ring.where} with `ymera keys encrypt`")

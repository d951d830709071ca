"""Who may read the API: bearer tokens with a role, kept hashed in a file of the data dir.

`<data dir>/web_tokens.json` (mode 0600) holds, per token, its name, its role (`read`: every GET;
`admin`: also the routes that act, such as `POST /api/audit/verify`, and the key pools) and the
sha256 of its text, never the text: `ymera tokens add NAME --role read|admin` prints the text
once. A request carries `Authorization: Bearer TOKEN`; `GET /api/live` may carry `?token=TOKEN`
instead (a browser's EventSource cannot set a header). With no token in the file, every request
is let in, and `ymera serve` binds to loopback only; once a server has seen a token, it asks
for one until it stops, even if every token is revoked.

The server reads the file again when it changes, so `ymera tokens revoke NAME` takes effect on
the next request, without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec

from events import YmeraError

__all__ = ["ROLES", "TOKEN_FILE", "Token", "TokenError", "Tokens"]

TOKEN_FILE = "web_tokens.json"
ROLES = ("read", "admin")
Role = Literal["read", "admin"]
_PREFIX = "ymera_"  # what a token's text begins with, so a secret scanner and a person recognise it
_NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-'"


class TokenError(YmeraError):
    """A token command that cannot be done; its text says why."""


class Token(msgspec.Struct, frozen=True):
    name: str
    role: Role
    sha256: str  # hex digest of the token's text
    created: str  # ISO time, UTC


class _File(msgspec.Struct):
    tokens: list[Token] = []


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_name(name: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
        raise TokenError(f"token name {name!r} is not {_NAME_RULE}")


class Tokens:
    """The token file of one data dir: read (and read again when it changes), added to, revoked from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._tokens: list[Token] = []
        self._once_required = False
        self._load()

    @classmethod
    def of(cls, data_dir: Path) -> Tokens:
        return cls(data_dir / TOKEN_FILE)

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._tokens = None, []
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            self._tokens = msgspec.json.decode(self.path.read_bytes(), type=_File).tokens
        except (OSError, msgspec.DecodeError) as exc:
            raise TokenError(f"the token file {self.path} cannot be read: {exc}") from None
        self._stamp = stamp

    @property
    def entries(self) -> list[Token]:
        self._load()
        return list(self._tokens)

    @property
    def required(self) -> bool:
        """Whether requests must carry a token: the file holds one or more, or did once since this
        object read it first. A server that started with tokens, or saw one added, never lets
        requests in without one again: revoking every token (or deleting the file) shuts it,
        never opens it."""
        if self.entries:
            self._once_required = True
        return self._once_required

    def check(self, text: str) -> Token | None:
        """The token whose text this is, or None."""
        digest = _digest(text)
        found = None
        for token in self.entries:
            if hmac.compare_digest(token.sha256, digest):
                found = token
        return found

    # ---- the commands' side -------------------------------------------------------------------

    def add(self, name: str, role: str) -> str:
        """A new token named `name` with `role`; returns its text (shown once, stored hashed)."""
        _check_name(name)
        if role not in ROLES:
            raise TokenError(f"role {role!r} is not one of {', '.join(ROLES)}")
        tokens = self.entries
        if any(t.name == name for t in tokens):
            raise TokenError(f"a token named {name!r} exists already (`ymera tokens revoke {name}` first)")
        text = _PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC).replace(microsecond=0).isoformat()
        tokens.append(Token(name, role, _digest(text), created))  # type: ignore[arg-type]
        self._write(tokens)
        return text

    def revoke(self, name: str) -> None:
        tokens = self.entries
        kept = [t for t in tokens if t.name != name]
        if len(kept) == len(tokens):
            names = ", ".join(t.name for t in tokens) or "none"
            raise TokenError(f"no token named {name!r} (tokens: {names})")
        self._write(kept)

    def _write(self, tokens: list[Token]) -> None:
        """The whole file anew, 0600 from its first byte, then renamed into place (atomic)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(msgspec.json.format(msgspec.json.encode(_File(tokens)), indent=2) + b"\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._stamp = None
        self._load()

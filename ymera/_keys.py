"""`ymera keys`: provider API keys kept encrypted in a `.env` file (guard/_vault.py).

    ymera keys encrypt                     an API key on stdin -> its `ymera-enc:` token on stdout
    ymera keys rotate [--env-file PATH]    a new KEK, the old one kept; every token in the file re-encrypted
    ymera keys retire KID [--env-file P]   the retired KEK KID removed, once no token needs it

The env file is rewritten whole or not at all: the new text goes to a temporary file beside it,
with the file's mode, then takes its name (a rename is atomic). Every token in it is decrypted
before anything changes, and the old KEK stays in the ring, so a process reading the file or the
keys at any moment decrypts what it reads. Nothing here prints a key: ids and variable names only.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from actors import Settings
from guard._vault import (
    CURRENT_FILE,
    KEK_ENV,
    KeyRing,
    VaultError,
    decrypt_api_key,
    encrypt_api_key,
    is_encrypted,
    retire_kek,
    rotate_kek,
    token_key_id,
)

__all__ = ["add_keys_command", "cmd_keys_encrypt", "cmd_keys_retire", "cmd_keys_rotate", "env_tokens",
           "replace_file"]

DEFAULT_ENV_FILE = Path(".env")
# A token as the value of a `.env` line: `NAME=token`, `export NAME="token"`; group 1 is all before it.
_ASSIGNED = re.compile(rb"""^([ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*['"]?)"""
                       rb"""(ymera-enc:[^\s'"#]*)""", re.M)


def add_keys_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="encrypt provider API keys for .env; rotate and retire the key that "
                                       "encrypts them")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    encrypt = keys_sub.add_parser("encrypt", help="read an API key from stdin (not echoed) and print its "
                                                  "ymera-enc: token, to put in .env in the key's place")
    encrypt.set_defaults(fn=cmd_keys_encrypt)
    rotate = keys_sub.add_parser("rotate", help="make a new key-encryption key, keep the old one for what still "
                                                "uses it, and re-encrypt every ymera-enc: value of the env file")
    rotate.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE, metavar="PATH",
                        help="the file holding the encrypted keys (default: .env)")
    rotate.set_defaults(fn=cmd_keys_rotate)
    retire = keys_sub.add_parser("retire", help="drop a retired key-encryption key; refused while the env file "
                                                "or the environment holds a value encrypted under it")
    retire.add_argument("kid", metavar="KID", help="the key id, as `ymera keys rotate` printed it")
    retire.add_argument("--env-file", type=Path, default=None, metavar="PATH",
                        help="the file holding the encrypted keys (default: .env, if there is one)")
    retire.set_defaults(fn=cmd_keys_retire)


def cmd_keys_encrypt(settings: Settings, args: argparse.Namespace) -> int:
    # At a terminal the key is typed without echo; piped in, it is read as it is.
    given = getpass.getpass("API key (not shown): ", stream=sys.stderr) if sys.stdin.isatty() else sys.stdin.read()
    lines = given.strip().splitlines()
    if not lines:
        raise VaultError("keys encrypt: no API key on stdin: pipe one in (`ymera keys encrypt < key.txt`) or "
                         "type it at the prompt")
    if len(lines) > 1:
        raise VaultError(f"keys encrypt: stdin holds {len(lines)} lines: give one API key at a time")
    path = settings.keys_dir / CURRENT_FILE
    new = not os.environ.get(KEK_ENV) and not path.exists()
    ring = KeyRing.load(settings.keys_dir, create=True)
    print(encrypt_api_key(lines[0].strip(), ring))
    if new:
        print(f"made the key-encryption key {path} (key id {ring.current}, mode 0600): back it up, apart from "
              ".env; without it no token decrypts", file=sys.stderr)
    return 0


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    path = _existing(args.env_file, "keys rotate")
    text = path.read_bytes()
    ring = KeyRing.load(settings.keys_dir)
    # Every token decrypts before the KEK changes: a bad one stops the rotation with nothing changed.
    plain = [decrypt_api_key(token, ring, name=f"{path}: {name}") for name, token in env_tokens(text)]
    fresh, old = rotate_kek(settings.keys_dir)
    values = iter(plain)
    replace_file(path, _ASSIGNED.sub(lambda m: m[1] + encrypt_api_key(next(values), fresh).encode(), text))
    print(f"re-encrypted {len(plain)} value{'s' if len(plain) != 1 else ''} in {path}: "
          f"key id {old} -> {fresh.current}")
    print(f"the old key stays in the ring ({settings.keys_dir / f'kek-{old}.key'}) for anything still encrypted "
          f"under it: `ymera keys retire {old}` drops it")
    return 0


def cmd_keys_retire(settings: Settings, args: argparse.Namespace) -> int:
    removed = retire_kek(settings.keys_dir, args.kid, check=lambda: _unused(args.kid, args.env_file))
    print(f"retired key id {args.kid}: {removed} removed")
    return 0


def env_tokens(text: bytes) -> Iterator[tuple[str, str]]:
    """(variable, token) of every `.env` line whose value is a `ymera-enc:` token, in order."""
    for match in _ASSIGNED.finditer(text):
        yield match[2].decode(), match[3].decode()


def replace_file(path: Path, data: bytes) -> None:
    """Put `data` in `path` at once, its mode kept: a temporary file beside it (made 0600, then
    given the mode), flushed to disk, renamed over it. A symlink's target is what is replaced."""
    path = path.resolve()
    mode = stat.S_IMODE(path.stat().st_mode)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _unused(key_id: str, env_file: Path | None) -> None:
    """Refuse (`VaultError`) while the env file (named, or .env if there is one) or the environment
    holds a value encrypted under `key_id`, naming each."""
    in_file: list[str] = []
    path = env_file or DEFAULT_ENV_FILE
    if env_file is not None or path.exists():
        in_file = [f"{path}: {name}" for name, token in env_tokens(_existing(path, "keys retire").read_bytes())
                   if token_key_id(token, f"{path}: {name}") == key_id]
    in_environment = [f"${name}" for name, value in sorted(os.environ.items())
                      if is_encrypted(value) and token_key_id(value, name) == key_id]
    if users := in_file + in_environment:
        how = ([f"`ymera keys rotate --env-file {path}`"] if in_file else []) + \
              (["a new token from `ymera keys encrypt` for each variable"] if in_environment else [])
        raise VaultError(f"keys retire: key id {key_id} still decrypts {len(users)} value"
                         f"{'s' if len(users) != 1 else ''} ({', '.join(users)}): re-encrypt "
                         f"{'them' if len(users) != 1 else 'it'} first ({'; '.join(how)})")


def _existing(path: Path, command: str) -> Path:
    if not path.is_file():
        raise VaultError(f"{command}: env file {path} does not exist: name the file that holds the encrypted keys "
                         "with --env-file PATH")
    return path

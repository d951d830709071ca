"""API keys encrypted at rest (guard/_vault.py): the token, the key ring and its rotation, and
every error a user would read, none of which holds the key or the plaintext."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

import llm
from actors import load_settings
from guard import KeyFileError
from guard._vault import (
    KEK_ENV,
    KeyRing,
    NoKek,
    TokenInvalid,
    UnknownKeyId,
    VaultError,
    decrypt_api_key,
    encrypt_api_key,
    kek_id,
    retire_kek,
    rotate_kek,
    token_key_id,
)

PLAIN = "sk-proj-Zq8vT3nLx0pR5mW2yB7c"
TOKEN = re.compile(r"ymera-enc:v1:[0-9a-f]{16}:[A-Za-z0-9_-]+")
NO_ENV: dict[str, str] = {}


def made_ring(keys: Path) -> KeyRing:
    return KeyRing.load(keys, NO_ENV, create=True)


def kek_text(keys: Path, name: str = "kek.key") -> str:
    return (keys / name).read_text().strip()


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    """Neither the plaintext nor any KEK (base64, or its raw bytes' hex) in what the error shows."""
    shown = f"{exc}|{exc!r}|{exc.args!r}|{vars(exc)!r}"
    for secret in (PLAIN, *secrets):
        assert secret not in shown
        if secret != PLAIN:
            assert base64.b64decode(secret).hex() not in shown


def test_a_token_names_its_key_and_decrypts_to_the_key_and_two_tokens_of_one_key_differ(tmp_path: Path) -> None:
    ring = made_ring(tmp_path / "keys")
    kek = base64.b64decode(kek_text(tmp_path / "keys"))
    assert ring.current == kek_id(kek) == hashlib.sha256(kek).hexdigest()[:16]
    first, second = encrypt_api_key(PLAIN, ring), encrypt_api_key(PLAIN, ring)
    assert TOKEN.fullmatch(first)
    assert TOKEN.fullmatch(second)
    assert first != second  # a fresh nonce each time
    assert token_key_id(first) == ring.current
    assert PLAIN not in first
    assert decrypt_api_key(first, ring) == decrypt_api_key(second, ring) == PLAIN
    assert stat.S_IMODE((tmp_path / "keys" / "kek.key").stat().st_mode) == 0o600
    assert PLAIN not in repr(ring)
    assert kek_text(tmp_path / "keys") not in repr(ring)


def test_the_kek_may_come_from_the_environment_and_then_no_key_file_is_made(tmp_path: Path) -> None:
    kek = os.urandom(32)
    ring = KeyRing.load(tmp_path / "keys", {KEK_ENV: base64.b64encode(kek).decode()}, create=True)
    assert ring.current == kek_id(kek)
    assert not (tmp_path / "keys").exists()
    assert decrypt_api_key(encrypt_api_key(PLAIN, ring), ring) == PLAIN


def test_without_a_kek_encrypting_and_decrypting_say_how_to_get_one(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    token = encrypt_api_key(PLAIN, made_ring(tmp_path / "elsewhere"))
    empty = KeyRing.load(keys, NO_ENV)
    how = (f"there is no key-encryption key: set YMERA_KEK in the environment (32 random bytes, base64; not in .env), "
           f"or make kek.key in {keys} with `ymera keys encrypt`")
    with pytest.raises(NoKek) as caught:
        decrypt_api_key(token, empty, name="GROQ_API_KEY_1")
    assert str(caught.value) == f"GROQ_API_KEY_1: encrypted under key id {token_key_id(token)}, and {how}"
    assert (caught.value.name, caught.value.key_id) == ("GROQ_API_KEY_1", token_key_id(token))
    assert_secret_free(caught.value, kek_text(tmp_path / "elsewhere"))
    with pytest.raises(NoKek, match=re.escape(how)):
        encrypt_api_key(PLAIN, empty)
    assert not keys.exists()  # loading to decrypt makes nothing


def test_a_kek_in_the_environment_that_is_not_32_bytes_of_base64_is_refused_without_showing_it(
        tmp_path: Path) -> None:
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(VaultError) as caught:
            KeyRing.load(tmp_path, {KEK_ENV: bad})
        assert str(caught.value) == ("YMERA_KEK is not a key-encryption key: it must be 32 random bytes, base64 "
                                     "(e.g. the output of `openssl rand -base64 32`)")
        assert bad not in repr(caught.value)


def test_a_kek_file_others_may_read_is_refused_saying_how_to_fix_it(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    token = encrypt_api_key(PLAIN, made_ring(keys))
    path = keys / "kek.key"
    path.chmod(0o644)
    with pytest.raises(KeyFileError) as caught:
        KeyRing.load(keys, NO_ENV)
    assert str(caught.value) == f"key file {path}: readable by others (mode 0644): chmod 600 {path}"
    assert_secret_free(caught.value, kek_text(keys))
    path.chmod(0o600)
    assert decrypt_api_key(token, KeyRing.load(keys, NO_ENV)) == PLAIN


def test_a_kek_file_that_holds_no_kek_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made_ring(keys)
    (keys / "kek.key").write_text(base64.b64encode(b"sixteen bytes!!!").decode())
    with pytest.raises(KeyFileError, match=re.escape(f"key file {keys / 'kek.key'}: not a key-encryption key "
                                                     "(32 random bytes, base64)")):
        KeyRing.load(keys, NO_ENV)


def test_a_token_under_another_kek_names_its_key_id_and_the_ids_the_ring_holds(tmp_path: Path) -> None:
    theirs, ours = made_ring(tmp_path / "theirs"), made_ring(tmp_path / "ours")
    token = encrypt_api_key(PLAIN, theirs)
    with pytest.raises(UnknownKeyId) as caught:
        decrypt_api_key(token, ours, name="GEMINI_API_KEY_2")
    assert str(caught.value) == (
        f"GEMINI_API_KEY_2: encrypted under key id {theirs.current}, which the key ring ({tmp_path / 'ours'}) does "
        f"not hold (it holds {ours.current}): was that KEK retired, or is the token another deployment's?")
    assert caught.value.key_id == theirs.current
    assert_secret_free(caught.value, kek_text(tmp_path / "theirs"), kek_text(tmp_path / "ours"))


def _flip(token: str, at: int) -> str:
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]


def _under(other: str) -> Callable[[str], str]:
    return lambda token: token.replace(token.split(":")[2], other)


# (what was done to the token, how, what the user reads: {kid} is the token's key id)
DAMAGE = [
    ("a ciphertext byte changed", lambda t: _flip(t, -10), "does not decrypt under key id {kid}: the token was "
                                                           "altered or cut short"),
    ("the nonce changed", lambda t: _flip(t, 31), "does not decrypt under key id {kid}: the token was altered or "
                                                  "cut short"),
    ("cut short by a few characters", lambda t: t[:-3], "does not decrypt under key id {kid}: the token was altered "
                                                        "or cut short"),
    ("cut to its nonce", lambda t: t[:t.rindex(":") + 20], "the token under key id {kid} is cut short or altered: "
                                                           "its data is not a nonce, a ciphertext and a tag"),
    ("cut within its key id", lambda t: t[:20], "not a whole ymera-enc: token (cut short?): expected "
                                                "ymera-enc:v1:<key id>:<data>"),
    ("another version", lambda t: t.replace(":v1:", ":v2:"), "a ymera-enc: token of version 'v2'; this Ymera "
                                                             "reads v1"),
    ("not a token", lambda t: PLAIN, "not a ymera-enc: token: expected ymera-enc:v1:<key id>:<data>"),
]


@pytest.mark.parametrize(("how", "damage", "message"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_token_fails_saying_what_is_wrong_and_never_showing_the_key(
        tmp_path: Path, how: str, damage: Callable[[str], str], message: str) -> None:
    keys = tmp_path / "keys"
    ring = made_ring(keys)
    token = encrypt_api_key(PLAIN, ring)
    with pytest.raises(TokenInvalid) as caught:
        decrypt_api_key(damage(token), ring, name="OPENAI_API_KEY")
    assert str(caught.value) == "OPENAI_API_KEY: " + message.format(kid=ring.current)
    assert_secret_free(caught.value, kek_text(keys))


def test_a_token_whose_key_id_was_edited_to_another_of_the_rings_keys_does_not_decrypt(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    token = encrypt_api_key(PLAIN, made_ring(keys))
    ring, old = rotate_kek(keys, NO_ENV)
    moved = _under(str(ring.current))(token)
    with pytest.raises(TokenInvalid) as caught:
        decrypt_api_key(moved, ring)
    assert str(caught.value) == (f"encrypted API key: does not decrypt under key id {ring.current}: the token was "
                                 "altered or cut short")
    assert_secret_free(caught.value, kek_text(keys), kek_text(keys, f"kek-{old}.key"))


def test_rotation_keeps_every_old_token_decryptable_at_every_moment_and_new_ones_use_the_new_kek(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    first = made_ring(keys)
    old_token = encrypt_api_key(PLAIN, first)
    real_replace = os.replace
    seen: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        # The moment before the new KEK takes kek.key's place: the old one is already kept.
        seen.append(decrypt_api_key(old_token, KeyRing.load(keys, NO_ENV)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    ring, old = rotate_kek(keys, NO_ENV)
    monkeypatch.undo()
    assert seen == [PLAIN]
    assert old == first.current != ring.current
    assert ring.ids == sorted([first.current or "", ring.current or ""])
    assert stat.S_IMODE((keys / f"kek-{old}.key").stat().st_mode) == 0o600
    assert decrypt_api_key(old_token, KeyRing.load(keys, NO_ENV)) == PLAIN
    new_token = encrypt_api_key(PLAIN, KeyRing.load(keys, NO_ENV))
    assert token_key_id(new_token) == ring.current
    # Twice: both retired keys stay until retired.
    third, second = rotate_kek(keys, NO_ENV)
    assert second == ring.current
    assert len(third.ids) == 3
    assert decrypt_api_key(old_token, third) == decrypt_api_key(new_token, third) == PLAIN
    assert sorted(p.name for p in keys.iterdir()) == sorted(["kek.key", f"kek-{old}.key", f"kek-{second}.key"])


def test_retiring_a_kek_drops_its_tokens_and_the_current_one_cannot_be_retired(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    token = encrypt_api_key(PLAIN, made_ring(keys))
    ring, old = rotate_kek(keys, NO_ENV)
    with pytest.raises(VaultError, match=re.escape(f"key id {ring.current} is the current KEK: rotate first "
                                                   "(`ymera keys rotate`), then retire it")):
        retire_kek(keys, str(ring.current), NO_ENV)
    assert retire_kek(keys, old, NO_ENV) == keys / f"kek-{old}.key"
    with pytest.raises(UnknownKeyId, match=re.escape(f"no retired KEK {old} in {keys} (retired: none)")):
        retire_kek(keys, old, NO_ENV)
    with pytest.raises(UnknownKeyId, match=re.escape(f"encrypted under key id {old}, which the key ring")):
        decrypt_api_key(token, KeyRing.load(keys, NO_ENV))
    with pytest.raises(VaultError, match=re.escape("'kek.key' is not a key id (16 hex digits")):
        retire_kek(keys, "kek.key", NO_ENV)


def test_rotation_is_refused_when_the_kek_comes_from_the_environment_or_there_is_none(tmp_path: Path) -> None:
    environ = {KEK_ENV: base64.b64encode(os.urandom(32)).decode()}
    with pytest.raises(VaultError, match=re.escape("the current KEK comes from YMERA_KEK, which this command cannot "
                                                   f"change: unset it to rotate the key files in {tmp_path}")):
        rotate_kek(tmp_path, environ)
    with pytest.raises(NoKek, match=re.escape("nothing to rotate: there is no key-encryption key")):
        rotate_kek(tmp_path, NO_ENV)


def test_settings_decrypt_the_encrypted_provider_keys_and_keep_the_plain_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ring = made_ring(data / "keys")
    other = "gsk_other_plain_key"
    env = {"YMERA_DATA_DIR": str(data), "GROQ_API_KEY_1": encrypt_api_key(PLAIN, ring), "GROQ_API_KEY_2": other,
           "YMERA_LLM_BASE_URL": "http://127.0.0.1:9/v1", "YMERA_LLM_API_KEY": encrypt_api_key("local-key", ring)}
    settings = load_settings(env, dotenv=None)
    assert settings.providers["GROQ"].keys == ((1, PLAIN), (2, other))
    assert settings.providers["YMERA_LLM"].keys == ((0, "local-key"),)
    endpoints = llm.Models(settings, llm.Catalogue.load()).endpoints
    assert endpoints["groq"].keys == (("groq:1", PLAIN), ("groq:2", other))
    assert PLAIN not in repr(settings)
    # In a .env file too; and settings without a token read no key file.
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"GROQ_API_KEY={encrypt_api_key(PLAIN, ring)}\n")
    assert load_settings({"YMERA_DATA_DIR": str(data)}, dotenv).providers["GROQ"].keys == ((0, PLAIN),)
    (data / "keys" / "kek.key").chmod(0o644)
    assert load_settings({"YMERA_DATA_DIR": str(data), "GROQ_API_KEY": other}, dotenv=None)


def test_settings_with_a_token_that_does_not_decrypt_stop_naming_the_variable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = encrypt_api_key(PLAIN, made_ring(tmp_path / "elsewhere"))
    made_ring(data / "keys")
    with pytest.raises(UnknownKeyId, match=re.escape(f"GEMINI_API_KEY_3: encrypted under key id "
                                                     f"{token_key_id(token)}, which the key ring")):
        load_settings({"YMERA_DATA_DIR": str(data), "GEMINI_API_KEY_3": token}, dotenv=None)
    with pytest.raises(TokenInvalid, match=re.escape("GEMINI_API_KEY: does not decrypt under key id")):
        load_settings({"YMERA_DATA_DIR": str(data), "GEMINI_API_KEY": _flip(token, -5),
                       KEK_ENV: kek_text(tmp_path / "elsewhere")}, dotenv=None)

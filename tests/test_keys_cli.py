"""`ymera keys encrypt | rotate | retire` as a user runs them, and a workflow run end to end on
encrypted keys in `.env`, after which no event, log line or output holds a key."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import msgspec

import bus
import events
import store
from actors import load_settings
from guard._vault import KEK_ENV, KeyRing, decrypt_api_key, encrypt_api_key, token_key_id

from .conftest import ymera, ymera_env
from .engine import all_events
from .llm_server import OpenAIServer
from .support import coding_workflow, stored_events

WORKFLOW = coding_workflow("secret-keys")


def user_env(data: Path, nats_url: str | None = None) -> dict[str, str]:
    env = ymera_env(data, nats_url)
    env.pop(KEK_ENV, None)
    return env


def keys(*args: str, env: dict[str, str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`ymera keys ARGS` in its own process, `stdin` piped in."""
    return subprocess.run([sys.executable, "-m", "runner", "keys", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=60)


def ring_of(data: Path) -> KeyRing:
    return KeyRing.load(data / "keys", {})


def test_encrypt_prints_only_the_token_and_makes_a_kek_readable_by_its_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secret = "sk-" + secrets.token_hex(20)
    made = keys("encrypt", env=user_env(data), cwd=tmp_path, stdin=secret + "\n")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n"
    ring = ring_of(data)
    assert token.startswith(f"ymera-enc:v1:{ring.current}:")
    assert decrypt_api_key(token, ring) == secret
    assert secret not in made.stdout + made.stderr
    kek = data / "keys" / "kek.key"
    assert made.stderr == (f"made the key-encryption key {kek} (key id {ring.current}, mode 0600): back it up, "
                           "apart from .env; without it no token decrypts\n")
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    again = keys("encrypt", env=user_env(data), cwd=tmp_path, stdin=secret)
    assert (again.returncode, again.stderr) == (0, "")  # the same KEK: nothing made
    assert token_key_id(again.stdout.strip()) == ring.current


def test_encrypt_says_what_is_wrong_with_its_input_or_its_kek_file_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    empty = keys("encrypt", env=user_env(data), cwd=tmp_path, stdin="\n")
    assert (empty.returncode, empty.stdout) == (1, "")
    assert empty.stderr == ("ymera: keys encrypt: no API key on stdin: pipe one in (`ymera keys encrypt < key.txt`) "
                            "or type it at the prompt\n")
    two = keys("encrypt", env=user_env(data), cwd=tmp_path, stdin="sk-one\nsk-two\n")
    assert two.stderr == "ymera: keys encrypt: stdin holds 2 lines: give one API key at a time\n"
    assert "sk-one" not in two.stdout + two.stderr
    keys("encrypt", env=user_env(data), cwd=tmp_path, stdin="sk-first")
    kek = data / "keys" / "kek.key"
    kek.chmod(0o644)
    loose = keys("encrypt", env=user_env(data), cwd=tmp_path, stdin="sk-second-secret")
    assert (loose.returncode, loose.stdout) == (1, "")
    assert loose.stderr == f"ymera: key file {kek}: readable by others (mode 0644): chmod 600 {kek}\n"


def test_rotate_re_encrypts_every_value_in_place_leaving_the_rest_of_the_file_and_its_mode_as_they_were(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    ring = KeyRing.load(data / "keys", {}, create=True)
    old = str(ring.current)
    plain = {"GROQ_API_KEY_1": "gsk_" + secrets.token_hex(8), "GEMINI_API_KEY": "AIza" + secrets.token_hex(8),
             "OPENAI_API_KEY_2": "sk-" + secrets.token_hex(8)}
    tokens = {name: encrypt_api_key(value, ring) for name, value in plain.items()}
    template = ("# provider keys: ymera-enc: values are encrypted\r\n"
                "GROQ_API_KEY_1={GROQ_API_KEY_1}\n"
                "\n"
                "  export GEMINI_API_KEY=\"{GEMINI_API_KEY}\"   # quoted, with a comment\n"
                "YMERA_LLM_MODEL=gpt-4o-mini\n"
                "OPENAI_API_KEY_2='{OPENAI_API_KEY_2}'\n"
                "GROQ_API_KEY_3=plain-key-stays\n"
                "LAST=no newline at the end")
    env_file = tmp_path / ".env"
    env_file.write_bytes(template.format(**tokens).encode())
    env_file.chmod(0o640)
    inode = env_file.stat().st_ino

    rotated = keys("rotate", env=user_env(data), cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    fresh = ring_of(data)
    new = str(fresh.current)
    assert new != old
    assert rotated.stdout.splitlines() == [
        f"re-encrypted 3 values in .env: key id {old} -> {new}",
        f"the old key stays in the ring ({data / 'keys' / f'kek-{old}.key'}) for anything still encrypted under it: "
        f"`ymera keys retire {old}` drops it"]
    text = env_file.read_bytes().decode()
    now = {name: line.split("=", 1)[1].split()[0].strip("'\"") for line in text.splitlines()
           for name in plain if line.strip().removeprefix("export ").startswith(name + "=")}
    assert text == template.format(**now)  # every other byte where it was
    assert all(token_key_id(now[name]) == new and now[name] != tokens[name] for name in plain)
    assert {name: decrypt_api_key(token, fresh) for name, token in now.items()} == plain
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert env_file.stat().st_ino != inode  # replaced by a rename, not written over
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "data"]  # no temporary file left
    for secret in plain.values():
        assert secret not in rotated.stdout + rotated.stderr
    # What the engine reads: the re-encrypted file decrypts.
    settings = load_settings({"YMERA_DATA_DIR": str(data)}, env_file)
    assert settings.providers["GROQ"].keys == ((1, plain["GROQ_API_KEY_1"]), (3, "plain-key-stays"))


def test_rotate_changes_nothing_when_a_value_does_not_decrypt_and_needs_its_env_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ring = KeyRing.load(data / "keys", {}, create=True)
    token = encrypt_api_key("sk-" + secrets.token_hex(8), ring)
    env_file = tmp_path / "prod.env"
    content = f"GROQ_API_KEY_1={token}\nGROQ_API_KEY_2={token[:-6]}AAAAAA\n".encode()
    env_file.write_bytes(content)
    kek_before = (data / "keys" / "kek.key").read_bytes()
    bad = keys("rotate", "--env-file", str(env_file), env=user_env(data), cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr == (f"ymera: {env_file}: GROQ_API_KEY_2: does not decrypt under key id {ring.current}: "
                          "the token was altered or cut short\n")
    assert env_file.read_bytes() == content
    assert (data / "keys" / "kek.key").read_bytes() == kek_before
    assert sorted(p.name for p in (data / "keys").iterdir()) == ["kek.key"]
    missing = keys("rotate", env=user_env(data), cwd=tmp_path)
    assert missing.stderr == ("ymera: keys rotate: env file .env does not exist: name the file that holds the "
                              "encrypted keys with --env-file PATH\n")


def test_retire_drops_an_old_kek_only_once_no_value_is_encrypted_under_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ring = KeyRing.load(data / "keys", {}, create=True)
    old = str(ring.current)
    (tmp_path / ".env").write_text(f"GROQ_API_KEY_1={encrypt_api_key('gsk-a', ring)}\n")
    other = tmp_path / "staging.env"
    other.write_text(f"GEMINI_API_KEY={encrypt_api_key('gemini-b', ring)}\n")
    assert keys("rotate", env=user_env(data), cwd=tmp_path).returncode == 0
    env = user_env(data)
    refused = keys("retire", old, "--env-file", str(other), env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr == (f"ymera: keys retire: key id {old} still decrypts 1 value ({other}: GEMINI_API_KEY): "
                              f"re-encrypt it first (`ymera keys rotate --env-file {other}`)\n")
    in_env = keys("retire", old, env={**env, "GEMINI_API_KEY_9": other.read_text().split("=", 1)[1].strip()},
                  cwd=tmp_path)
    assert in_env.stderr == (f"ymera: keys retire: key id {old} still decrypts 1 value ($GEMINI_API_KEY_9): "
                             "re-encrypt it first (a new token from `ymera keys encrypt` for each variable)\n")
    current = keys("retire", str(ring_of(data).current), env=env, cwd=tmp_path)
    assert current.stderr == (f"ymera: key id {ring_of(data).current} is the current KEK: rotate first "
                              "(`ymera keys rotate`), then retire it\n")
    retired = keys("retire", old, env=env, cwd=tmp_path)
    assert retired.returncode == 0, retired.stderr
    assert retired.stdout == f"retired key id {old}: {data / 'keys' / f'kek-{old}.key'} removed\n"
    assert ring_of(data).ids == [ring_of(data).current]
    gone = keys("retire", old, env=env, cwd=tmp_path)
    assert gone.stderr == f"ymera: no retired KEK {old} in {data / 'keys'} (retired: none)\n"


def test_a_workflow_run_on_encrypted_keys_leaves_the_keys_in_no_event_log_line_or_output(
        tmp_path: Path, nats_server: bus.EmbeddedServer) -> None:
    data = tmp_path / "data"
    good, refused = "sk-live-" + secrets.token_hex(16), "sk-revoked-" + secrets.token_hex(16)
    kek = base64.b64encode(os.urandom(32)).decode()
    ring = KeyRing.load(data / "keys", {KEK_ENV: kek})
    # Key 1 is refused by the provider (its 401 is recorded), key 2 works.
    (tmp_path / ".env").write_text(f"YMERA_LLM_API_KEY_1={encrypt_api_key(refused, ring)}\n"
                                   f"YMERA_LLM_API_KEY_2={encrypt_api_key(good, ring)}\n")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    with OpenAIServer(model="gpt-test", api_keys=[good]) as server:
        env = {**user_env(data, nats_server.url), KEK_ENV: kek, "YMERA_LLM_BASE_URL": server.base_url,
               "YMERA_LLM_MODEL": "gpt-test", "YMERA_LOG_LEVEL": "debug"}
        run = ymera("run", "wf.yaml", "--actors", env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        sent = {r.headers.get("authorization") for r in server.requests}
        assert sent == {f"Bearer {refused}", f"Bearer {good}"}  # both keys were decrypted and used
        outputs = [run, *(ymera(*args, env=env, cwd=tmp_path) for args in (
            ("status", "secret-keys"), ("models",), ("runs", "secret-keys"), ("audit", "verify")))]
    assert all(o.returncode == 0 for o in outputs), [o.stdout + o.stderr for o in outputs]

    async def read() -> tuple[list[events.Event], list[events.Event]]:
        connection = await bus.connect(nats_server.url)
        try:
            streamed = await all_events(connection)
        finally:
            await connection.close()
        async with store.SqliteEventLog(data / "events.db", readonly=True) as log:
            return streamed, await stored_events(log)

    streamed, logged = asyncio.run(read())
    assert logged
    assert {e.id for e in logged} <= {e.id for e in streamed}
    called = [e for e in logged if isinstance(e, events.LLMCalled)]
    assert {c.outcome for c in called} == {"auth", "ok"}
    assert {c.key_id for c in called} == {"local:1", "local:2"}
    seen = {
        "CLI output and log lines": "".join(o.stdout + o.stderr for o in outputs).encode(),
        "events in the stream": b"".join(msgspec.json.encode(e) for e in streamed),
        "events in the log": b"".join(msgspec.json.encode(e) for e in logged),
        # At rest: the SQLite log, its WAL, blobs and snapshots; JetStream's own store.
        **{str(p): p.read_bytes() for root in (data, nats_server.store_dir) for p in root.rglob("*") if p.is_file()},
    }
    # The scan reads what was kept: the task's description is in the log file and JetStream's store.
    at_rest = {where: text for where, text in seen.items() if where.startswith("/")}
    assert any(w.startswith(str(data / "events.db")) and b"adds two numbers" in t for w, t in at_rest.items())
    assert any(w.startswith(str(nats_server.store_dir)) and b"adds two numbers" in t for w, t in at_rest.items())
    for secret in (good, refused):
        forms = (secret.encode(), base64.b64encode(secret.encode()), secret.encode().hex().encode())
        leaks = [where for where, text in seen.items() if any(form in text for form in forms)]
        assert leaks == [], f"a key is in {leaks}"

"""Tokens: who may call what, the token file and `ymera tokens`, and `ymera serve` refusing to
answer anyone on a non-loopback address. Real nats-server, SQLite, engine and uvicorn."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

import bus
from web._auth import TokenError, Tokens

from .conftest import ymera, ymera_env
from .web_support import serving

NEEDS_TOKEN = "this route needs a token: send `Authorization: Bearer TOKEN` (`ymera tokens add NAME` makes one)"


async def test_no_token_a_wrong_token_and_a_read_token_on_an_admin_route(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus, engine=False) as web, web.client(None) as http:
        r = await http.get("/api/workflows")
        assert (r.status_code, r.json()) == (401, {"error": NEEDS_TOKEN, "detail": None})
        assert r.headers["www-authenticate"] == 'Bearer realm="ymera"'
        r = await http.get("/api/workflows", headers={"Authorization": "Bearer ymera_not-a-token"})
        assert (r.status_code, r.json()["error"]) == (401, "unknown or revoked token")
        r = await http.get("/api/workflows", headers={"Authorization": f"Basic {web.tokens['read']}"})
        assert (r.status_code, r.json()["error"]) == (401, "the Authorization header must be `Bearer TOKEN`")
        # A token in the query is for the live feed only (an EventSource cannot send a header).
        r = await http.get(f"/api/workflows?token={web.tokens['read']}")
        assert (r.status_code, r.json()["error"]) == (401, NEEDS_TOKEN)

        read, admin = web.headers("read"), web.headers("admin")
        for method, path in [("GET", "/api/keys"), ("POST", "/api/audit/verify")]:
            r = await http.request(method, path, headers=read)
            assert (r.status_code, r.json()["error"]) == (
                403, "this route needs the admin role; token 'reader' has the read role"), path
            assert (await http.request(method, path, headers=admin)).status_code in (200, 202)
        for path in ("/api/workflows", "/dashboard", "/api/events", "/api/audit", "/metrics"):
            assert (await http.get(path, headers=read)).status_code == 200, path
            assert (await http.get(path)).status_code == 401, path
        # What needs no token: health, the document, the page and its files.
        for path in ("/healthz", "/openapi.json", "/", "/static/index.html"):
            assert (await http.get(path)).status_code == 200, path

        async with http.stream("GET", f"/api/live?token={web.tokens['read']}") as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
        async with http.stream("GET", "/api/live?token=wrong") as live:
            assert live.status_code == 401

        # Revoked: refused from the next request, without a restart.
        Tokens.of(web.settings.data_dir).revoke("reader")
        r = await http.get("/api/workflows", headers=read)
        assert (r.status_code, r.json()["error"]) == (401, "unknown or revoked token")
        assert (await http.get("/api/workflows", headers=admin)).status_code == 200

        # A token file that cannot be read: every request refused (503), saying why.
        path = web.settings.data_dir / "web_tokens.json"
        good = path.read_bytes()
        path.write_bytes(b"{not json")
        r = await http.get("/api/workflows", headers=admin)
        assert r.status_code == 503
        assert r.json()["error"].startswith(f"the token file {path} cannot be read: ")
        path.write_bytes(good)
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1000))  # a new stamp, whatever the clock's grain
        assert (await http.get("/api/workflows", headers=admin)).status_code == 200

        # Every token revoked, then the file deleted: the server stays shut, it never opens.
        Tokens.of(web.settings.data_dir).revoke("admin")
        (web.settings.data_dir / "web_tokens.json").unlink()
        for headers in ({}, admin):
            r = await http.get("/api/workflows", headers=headers)
            assert r.status_code == 401, r.text
        assert (await http.get("/api/workflows")).json()["error"] == (
            "this route needs a token: send `Authorization: Bearer TOKEN` (`ymera tokens add NAME` makes one)")


async def test_without_tokens_every_request_is_let_in(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus, auth=False, engine=False) as web, web.client(None) as http:
        assert (await http.get("/api/keys")).status_code == 200
        assert (await http.post("/api/audit/verify")).status_code == 202


def test_the_token_file_is_0600_and_holds_no_token(tmp_path: Path) -> None:
    tokens = Tokens.of(tmp_path / "data")
    text = tokens.add("ops", "admin")
    reader = tokens.add("grafana", "read")
    path = tmp_path / "data" / "web_tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert text not in raw
    assert reader not in raw
    assert text[6:] not in raw
    assert [(t["name"], t["role"]) for t in json.loads(raw)["tokens"]] == [("ops", "admin"), ("grafana", "read")]
    assert text.startswith("ymera_")
    assert len(text) > 40
    checked = tokens.check(text)
    assert checked is not None
    assert checked.name == "ops"
    assert tokens.check(text + "x") is None
    assert tokens.check("") is None


def test_token_mistakes_are_named(tmp_path: Path) -> None:
    tokens = Tokens.of(tmp_path)
    tokens.add("ops", "read")
    for call, message in [
        (lambda: tokens.add("ops", "admin"), "a token named 'ops' exists already (`ymera tokens revoke ops` first)"),
        (lambda: tokens.add("no spaces", "read"),
         "token name 'no spaces' is not 1 to 64 letters, digits, '.', '_' or '-'"),
        (lambda: tokens.add("x", "root"), "role 'root' is not one of read, admin"),
        (lambda: tokens.revoke("nobody"), "no token named 'nobody' (tokens: ops)"),
    ]:
        with pytest.raises(TokenError) as caught:
            call()
        assert str(caught.value) == message
    (tmp_path / "web_tokens.json").write_text("{not json")
    with pytest.raises(TokenError, match=r"^the token file .*web_tokens.json cannot be read: "):
        Tokens.of(tmp_path)


def test_ymera_tokens_add_list_revoke(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    empty = ymera("tokens", "list", env=env)
    assert (empty.returncode, empty.stdout) == (
        0, "no tokens: `ymera serve` answers anyone, on loopback only (`ymera tokens add NAME --role admin`)\n")
    added = ymera("tokens", "add", "ops", "--role", "admin", env=env)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("ymera_")
    assert added.stderr == "token 'ops' (admin) added; it is shown this once: keep it\n"
    assert Tokens.of(tmp_path / "data").check(token) is not None
    assert ymera("tokens", "add", "grafana", env=env).returncode == 0
    listed = ymera("tokens", "list", env=env)
    assert token not in listed.stdout
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [["name", "role"], ["ops", "admin"],
                                                                         ["grafana", "read"]]
    again = ymera("tokens", "add", "ops", env=env)
    assert (again.returncode, again.stderr) == (
        1, "ymera: a token named 'ops' exists already (`ymera tokens revoke ops` first)\n")
    bad_role = ymera("tokens", "add", "x", "--role", "root", env=env)
    assert bad_role.returncode == 2
    assert "argument --role: invalid choice: 'root' (choose from 'read', 'admin')" in bad_role.stderr
    assert ymera("tokens", "revoke", "ops", env=env).stdout == "token 'ops' revoked\n"
    gone = ymera("tokens", "revoke", "ops", env=env)
    assert (gone.returncode, gone.stderr) == (1, "ymera: no token named 'ops' (tokens: grafana)\n")


def test_serve_refuses_a_non_loopback_host_without_tokens(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    refused = ymera("serve", "--host", "0.0.0.0", "--port", "0", env=env)
    assert refused.returncode == 1
    assert refused.stderr == (
        "ymera: refusing to serve on 0.0.0.0 with no API token: anyone who reaches it could read every workflow. "
        "Add one (`ymera tokens add NAME --role admin`) or serve on 127.0.0.1\n")
    bad_port = ymera("serve", "--port", "70000", env=env)
    assert bad_port.returncode == 2
    assert "argument --port: --port must be a number from 0 to 65535, got '70000'" in bad_port.stderr
    no_log = ymera("serve", "--port", "0", env=env)
    assert (no_log.returncode, no_log.stderr) == (
        1, f"ymera: no event log at {tmp_path / 'data' / 'events.db'}: start the engine first (`ymera up`), or "
           "set YMERA_DATA_DIR to the deployment's data dir\n")

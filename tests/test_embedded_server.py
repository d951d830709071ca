"""The embedded nats-server's Go runtime: half the machine's cores, unless the environment says."""

from __future__ import annotations

from pathlib import Path

import pytest

import bus
from bus._server import go_max_procs


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_half_the_cores_and_at_least_one() -> None:
    assert [go_max_procs(n) for n in (1, 2, 3, 8, 64)] == [1, 1, 1, 4, 32]


def test_the_server_runs_on_half_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    with bus.EmbeddedServer(tmp_path / "nats") as server:
        assert server.pid is not None
        assert _environ(server.pid)["GOMAXPROCS"] == str(go_max_procs())


def test_a_gomaxprocs_in_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOMAXPROCS", "3")
    with bus.EmbeddedServer(tmp_path / "nats") as server:
        assert server.pid is not None
        assert _environ(server.pid)["GOMAXPROCS"] == "3"

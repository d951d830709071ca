"""The git tool against real git in temporary repositories: it works inside its repository,
refuses what leaves it, and runs nothing the repository itself declares (hooks, fsmonitor)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tools import Git, ToolError

AUTHOR = "Ada Lovelace <ada@example.com>"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "a.txt").write_text("one\n")
    return root.resolve()


def configure(repo: Path, key: str, value: str) -> None:
    subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)


def head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


async def test_status_commit_log_and_diff(repo: Path) -> None:
    git = Git(repo)
    assert await git.status() == "?? a.txt\n"
    commit = await git.commit(["a.txt"], message="Add a", author=AUTHOR)
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert commit == head(repo)
    assert await git.status() == ""
    hash_, author, _date, subject = (await git.log()).rstrip("\n").split("\t")
    assert (hash_, author, subject) == (commit, AUTHOR, "Add a")
    (repo / "a.txt").write_text("one\ntwo\n")
    assert "+two" in await git.diff()
    assert await git.diff(staged=True) == ""
    assert await git.diff(["a.txt"]) == await git.diff()


async def test_a_commit_takes_only_its_paths(repo: Path) -> None:
    (repo / "b.txt").write_text("b\n")
    git = Git(repo)
    await git.commit(["a.txt"], message="Only a", author=AUTHOR)
    assert await git.status() == "?? b.txt\n"


async def test_a_commit_runs_no_hook(repo: Path) -> None:
    marker = repo / "hook-ran"
    hook = f"#!/bin/sh\ntouch {marker}\nexit 1\n"
    for hooks in (repo / ".git" / "hooks", repo / "my-hooks"):
        hooks.mkdir(exist_ok=True)
        for name in ("pre-commit", "commit-msg", "post-commit"):
            (hooks / name).write_text(hook)
            (hooks / name).chmod(0o755)
    configure(repo, "core.hooksPath", "my-hooks")
    await Git(repo).commit(["a.txt"], message="No hooks", author=AUTHOR)
    assert not marker.exists()


async def test_the_repository_cannot_make_status_run_code(repo: Path) -> None:
    marker = repo / "fsmonitor-ran"
    monitor = repo / "monitor.sh"
    monitor.write_text(f"#!/bin/sh\ntouch {marker}\n")
    monitor.chmod(0o755)
    configure(repo, "core.fsmonitor", str(monitor))
    await Git(repo).status()
    assert not marker.exists()


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "sub/../../outside.txt", "escape"])
async def test_a_path_outside_the_repository_is_refused(repo: Path, path: str) -> None:
    (repo / "escape").symlink_to(repo.parent)
    git = Git(repo)
    message = f"git: path {path!r} is outside the repository {repo}"
    for call in (git.commit([path], message="x", author=AUTHOR), git.diff([path]), git.log(paths=[path])):
        with pytest.raises(ToolError) as caught:
            await call
        assert (caught.value.kind, str(caught.value)) == ("refused", message)


async def test_a_path_that_looks_like_a_flag_is_only_a_path(repo: Path) -> None:
    with pytest.raises(ToolError) as caught:
        await Git(repo).commit(["--amend"], message="x", author=AUTHOR)
    assert str(caught.value) == "git: git add exited with 128: fatal: pathspec '--amend' did not match any files"


def test_a_directory_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as caught:
        Git(tmp_path)
    assert (caught.value.kind, str(caught.value)) == ("refused", f"git: {tmp_path} is not a git repository")


async def test_nothing_to_commit(repo: Path) -> None:
    git = Git(repo)
    await git.commit(["a.txt"], message="Add a", author=AUTHOR)
    with pytest.raises(ToolError) as caught:
        await git.commit(["a.txt"], message="Again", author=AUTHOR)
    assert (caught.value.kind, str(caught.value)) == ("failed", "git: nothing to commit in a.txt")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"author": "Ada"}, "git: author 'Ada' is not 'Name <email>'"),
    ({"message": "  "}, "git: a commit needs a message"),
    ({"paths": []}, "git: a commit needs the paths to commit"),
])
async def test_a_malformed_commit_is_a_bad_request(repo: Path, kwargs: dict[str, object], message: str) -> None:
    call = {"paths": ["a.txt"], "message": "m", "author": AUTHOR, **kwargs}
    with pytest.raises(ToolError) as caught:
        await Git(repo).commit(call["paths"], message=call["message"], author=call["author"])  # type: ignore[arg-type]
    assert (caught.value.kind, str(caught.value)) == ("bad_request", message)

"""The files tool on real directories: what a task may do inside its workspace, and every way out
refused with the sentence the user reads (traversal, absolute paths, symlinks, one swapped in
mid-walk, special files, sizes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tools import FileEntry, FileLimits, FileMatch, ToolError, Workspace


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("the secret\n")
    return secret


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def main():\n    return 42\n")
    (root / "README.md").write_text("hello\nworld\n")
    return Workspace(root, FileLimits(max_read_bytes=1000, max_write_bytes=1000, max_matches=3))


def refused(call: Callable[[], object]) -> ToolError:
    with pytest.raises(ToolError) as caught:
        call()
    return caught.value


def test_read_write_list_inside_the_workspace(ws: Workspace) -> None:
    assert ws.read("src/app.py") == "def main():\n    return 42\n"
    assert ws.read("./src//app.py") == ws.read("src/app.py")
    assert ws.write("out/deep/new.txt", "made") == 4
    assert ws.read("out/deep/new.txt") == "made"
    assert ws.list() == [FileEntry("README.md", "file", 12), FileEntry("out", "dir", 0), FileEntry("src", "dir", 0)]


def test_a_write_replaces_the_file_atomically_and_leaves_no_temporary_file(ws: Workspace) -> None:
    ws.write("README.md", "new")
    assert ws.read("README.md") == "new"
    assert sorted(p.name for p in ws.root.iterdir()) == ["README.md", "src"]


@pytest.mark.parametrize(("path", "reason"), [
    ("../outside/secret.txt", "path '../outside/secret.txt' goes up with '..'; it must stay inside the workspace"),
    ("src/../../outside/secret.txt",
     "path 'src/../../outside/secret.txt' goes up with '..'; it must stay inside the workspace"),
    ("/etc/passwd", "path '/etc/passwd' is absolute; give a path relative to the workspace"),
    ("C:\\Windows\\win.ini", "path 'C:\\\\Windows\\\\win.ini' is absolute; give a path relative to the workspace"),
])
def test_paths_out_of_the_workspace_are_refused(ws: Workspace, outside: Path, path: str, reason: str) -> None:
    for call in (lambda: ws.read(path), lambda: ws.write(path, "x"), lambda: ws.patch(path, "a", "b")):
        error = refused(call)
        assert (error.kind, str(error)) == ("refused", f"files: {reason}")
    assert (outside / "secret.txt").read_text() == "the secret\n"


def test_a_symlink_to_outside_is_refused_for_read_write_and_list(ws: Workspace, outside: Path) -> None:
    (ws.root / "link").symlink_to(outside)
    (ws.root / "file_link").symlink_to(outside / "secret.txt")
    assert str(refused(lambda: ws.read("link/secret.txt"))) == \
        "files: path 'link/secret.txt' goes through a symlink ('link'); symlinks are not followed"
    assert str(refused(lambda: ws.write("link/secret.txt", "pwned"))) == \
        "files: path 'link/secret.txt' goes through a symlink ('link'); symlinks are not followed"
    assert str(refused(lambda: ws.list("link"))) == \
        "files: path 'link' goes through a symlink ('link'); symlinks are not followed"
    assert str(refused(lambda: ws.read("file_link"))) == \
        "files: path 'file_link' is a symlink; symlinks are not followed"
    assert str(refused(lambda: ws.write("file_link", "pwned"))) == \
        "files: path 'file_link' is a symlink; symlinks are not followed"
    assert (outside / "secret.txt").read_text() == "the secret\n"


def test_a_symlink_inside_the_workspace_is_refused_too(ws: Workspace) -> None:
    (ws.root / "alias").symlink_to(ws.root / "src")
    assert refused(lambda: ws.read("alias/app.py")).kind == "refused"


def test_a_symlink_swapped_in_after_the_walk_began_is_not_followed(
        ws: Workspace, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race a check-then-open would lose: `src` is a directory when the walk starts and a
    link to outside by the time its component is opened."""
    real_open = os.open
    swapped = []

    def open_then_swap(path: object, flags: int, *args: object, **kwargs: object) -> int:
        fd = real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]
        if not swapped and path == ws.root:
            (ws.root / "src").rename(ws.root / "src.old")
            (ws.root / "src").symlink_to(outside)
            swapped.append(True)
        return fd

    monkeypatch.setattr(os, "open", open_then_swap)
    error = refused(lambda: ws.read("src/secret.txt"))
    monkeypatch.undo()
    assert swapped
    assert str(error) == "files: path 'src/secret.txt' goes through a symlink ('src'); symlinks are not followed"


def test_a_symlink_swapped_in_before_a_write_is_replaced_not_written_through(
        ws: Workspace, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_rename = os.rename

    def swap_then_rename(src: str, dst: str, **kwargs: int) -> None:
        (ws.root / "README.md").unlink()
        (ws.root / "README.md").symlink_to(outside / "secret.txt")
        real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", swap_then_rename)
    ws.write("README.md", "new")
    monkeypatch.undo()
    assert (outside / "secret.txt").read_text() == "the secret\n"
    assert not (ws.root / "README.md").is_symlink()
    assert (ws.root / "README.md").read_text() == "new"


def test_fifos_and_devices_are_refused(ws: Workspace) -> None:
    os.mkfifo(ws.root / "pipe")
    assert str(refused(lambda: ws.read("pipe"))) == \
        "files: path 'pipe' is a FIFO; only regular files are read or written"
    assert str(refused(lambda: ws.write("pipe", "x"))) == \
        "files: path 'pipe' is a FIFO; only regular files are read or written"
    devices = Workspace("/dev")
    assert str(refused(lambda: devices.read("zero"))) == \
        "files: path 'zero' is a device; only regular files are read or written"


def test_a_hard_link_to_a_file_outside_is_not_read(ws: Workspace, outside: Path) -> None:
    os.link(outside / "secret.txt", ws.root / "linked.txt")
    assert str(refused(lambda: ws.read("linked.txt"))) == \
        "files: path 'linked.txt' has 2 hard links; a file linked from elsewhere is not read"
    ws.write("linked.txt", "replaced")  # a write replaces the name, never the file it linked to
    assert (outside / "secret.txt").read_text() == "the secret\n"


def test_os_errors_are_one_line_naming_the_path(ws: Workspace) -> None:
    long = "a" * 300
    error = refused(lambda: ws.read(long))
    assert (error.kind, str(error)) == ("failed", f"files: path {long!r}: File name too long")
    assert str(refused(lambda: ws.write("README.md/x", "y"))) == \
        "files: path 'README.md/x': 'README.md' is not a directory"


def test_oversize_read_and_write_are_refused(ws: Workspace) -> None:
    (ws.root / "big.bin").write_bytes(b"x" * 1001)
    error = refused(lambda: ws.read("big.bin"))
    assert (error.kind, str(error)) == ("limit", "files: file 'big.bin' is 1001 bytes, over the read limit of 1000")
    error = refused(lambda: ws.write("big.txt", "y" * 1001))
    assert (error.kind, str(error)) == (
        "limit", "files: writing 1001 bytes to 'big.txt' is over the write limit of 1000")
    assert not (ws.root / "big.txt").exists()


def test_missing_files_and_directories_say_so(ws: Workspace) -> None:
    assert str(refused(lambda: ws.read("nope.txt"))) == "files: no such file: 'nope.txt'"
    assert str(refused(lambda: ws.read("nope/x.txt"))) == "files: no such directory: 'nope/x.txt'"
    assert str(refused(lambda: ws.read("src"))) == "files: path 'src' is a directory, not a file"


def test_search_finds_substrings_and_regexes_and_stops_at_the_cap(ws: Workspace) -> None:
    assert ws.search("return") == ([FileMatch("src/app.py", 2, "    return 42")], False)
    assert ws.search(r"^(hello|def)", regex=True) == (
        [FileMatch("README.md", 1, "hello"), FileMatch("src/app.py", 1, "def main():")], False)
    ws.write("many.txt", "x\n" * 10)
    matches, capped = ws.search("x")
    assert (len(matches), capped) == (3, True)
    assert str(refused(lambda: ws.search("(", regex=True))).startswith("files: invalid regex '(':")


def test_search_skips_symlinks(ws: Workspace, outside: Path) -> None:
    (ws.root / "link").symlink_to(outside)
    assert ws.search("secret") == ([], False)


def test_patch_replaces_exactly_one_occurrence(ws: Workspace) -> None:
    ws.patch("src/app.py", "return 42", "return 43")
    assert ws.read("src/app.py") == "def main():\n    return 43\n"
    assert str(refused(lambda: ws.patch("src/app.py", "missing", "x"))) == \
        "files: patch 'src/app.py': the text to replace does not occur"
    ws.write("twice.txt", "a a")
    assert str(refused(lambda: ws.patch("twice.txt", "a", "b"))) == \
        "files: patch 'twice.txt': the text to replace occurs 2 times; give more context so it occurs once"

"""The layout's rules, checked on the source: arrows go down only (DESIGN.md, "Layout").

- nothing above `bus/` imports nats-py or reaches for the bus's raw client (`.nc`, `.js`,
  kept for tests and benchmarks that measure NATS itself);
- arrows go down only: `runner → web/ymera → actors → llm/guard/tools → store → bus → config → events`;
- `events/` imports nothing of Ymera;
- actors never import each other (an actor package may import what `actors/` shares:
  the runtime, settings, registry);
- subjects are computed in `events/`, never written: no `ymera.<domain>…` literal elsewhere.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "bus", "config", "events", "guard", "llm", "store", "tools", "web", "ymera")
OURS = frozenset({*PACKAGES, "runner", "llm", "guard", "tools", "web"})
# Every package in actors/ is an actor's, but those whose name starts with "_": what actors
# share (actors/_checks), which any of them may import.
ACTOR_PACKAGES = frozenset(p.name for p in (ROOT / "actors").iterdir()
                           if (p / "__init__.py").exists() and not p.name.startswith("_"))
# A NATS subject or filter of Ymera's stream: `ymera.wf.…`, `ymera.task.…`, `ymera.>`, `ymera.*.…`
# (a logger name like "ymera.actor" is none).
SUBJECT = re.compile(r"^ymera\.(wf|task|sec|alert|fb|\*|>)(\.|$)")


def sources(*dirs: str) -> Iterator[Path]:
    for name in dirs:
        path = ROOT / name
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in `path`, relative ones resolved."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from . import x` / `from actors import distributor`
                yield node.lineno, f"{module}.{alias.name}"


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_nothing_above_the_bus_knows_nats() -> None:
    above = ("actors", "guard", "llm", "store", "ymera", "runner.py")
    found = [f"{where(p, n)} imports {m}" for p in sources(*above) for n, m in imported(p)
             if m.split(".")[0] == "nats"]
    found += [f"{where(p, node.lineno)} uses .{node.attr}" for p in sources(*above)
              for node in ast.walk(ast.parse(p.read_text(), str(p)))
              if isinstance(node, ast.Attribute) and node.attr in ("nc", "js")]
    assert found == []


def test_messages_from_the_bus_are_decoded_in_the_bus_only() -> None:
    # The one point where an incoming event is decoded (`Bus.decode`, `Bus.read`): where its
    # signature is checked (bus/_seal.py).
    found = [f"{where(p, node.lineno)} calls {name}" for p in sources("actors", "store", "ymera", "runner.py")
             for node in ast.walk(ast.parse(p.read_text(), str(p))) if isinstance(node, ast.Call)
             if (name := getattr(node.func, "attr", getattr(node.func, "id", ""))) in ("read_message",
                                                                                       "decode_message")]
    assert found == []


# How low each package sits (DESIGN.md, "Layout"): a package imports only those below it.
RANK = {"events": 0, "config": 1, "bus": 2, "store": 3, "llm": 4, "guard": 4, "tools": 4, "actors": 5,
        "ymera": 6, "web": 6, "runner": 7}


def test_arrows_go_down_only() -> None:
    found = []
    for path in sources(*PACKAGES, "runner.py"):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for line, module in imported(path):
            top = module.split(".")[0]
            if top in RANK and top != own and RANK[top] >= RANK[own]:
                found.append(f"{where(path, line)} imports {module}")
    assert found == []


def test_events_import_nothing_of_ymera() -> None:
    found = [f"{where(p, n)} imports {m}" for p in sources("events") for n, m in imported(p)
             if m.split(".")[0] in OURS - {"events"}]
    assert found == []


def test_actors_never_import_each_other() -> None:
    found = []
    for path in sources("actors"):
        parts = path.relative_to(ROOT).parts
        own = parts[1] if len(parts) > 2 else None  # the actor package this file is in, if any
        for line, module in imported(path):
            tokens = module.split(".")
            if tokens[0] == "actors" and len(tokens) > 1 and tokens[1] in ACTOR_PACKAGES and tokens[1] != own \
                    and own is not None:
                found.append(f"{where(path, line)} imports {module}")
    assert found == []


def test_no_subject_is_written_by_hand_outside_events() -> None:
    found = []
    for path in sources("actors", "bus", "store", "ymera", "runner.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SUBJECT.match(node.value):
                found.append(f"{where(path, node.lineno)}: {node.value!r}")
    assert found == []


def test_the_rules_see_what_they_look_for() -> None:
    # The checks above find nothing because nothing is there, not because they cannot see.
    sample = ROOT / "actors" / "monitor" / "_actor.py"
    assert "actors._runtime" in {m for _, m in imported(sample)}
    assert SUBJECT.match("ymera.task.*.*.ready")
    assert SUBJECT.match("ymera.>")
    assert not SUBJECT.match("ymera.actor")
    assert {"distributor", "executor", "monitor"} <= ACTOR_PACKAGES
    assert "config" in {m for _, m in imported(ROOT / "bus" / "_local.py")}


def test_every_package_is_installed() -> None:
    # setuptools installs the packages pyproject.toml lists, no others: a package missing there
    # works in an editable install and is absent from a wheel (actors._checks once was).
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for name in PACKAGES for p in (ROOT / name).rglob("__init__.py")}
    assert found - listed == set(), "packages missing from [tool.setuptools] packages"
    assert listed - found == set(), "listed packages that do not exist"

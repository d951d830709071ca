"""The labelled task/answer pairs of tests/data/quality/ and the helpers the scoring tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import events
from actors._quality import Scores, score

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "quality.md"
DATA = ROOT / "tests" / "data" / "quality"
FIELDS = ("accuracy", "completeness", "consistency", "efficiency", "maintainability", "overall")


def labelled() -> dict[str, dict[str, Any]]:
    pairs: dict[str, dict[str, Any]] = {}
    for path in sorted(DATA.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for pair in doc["pairs"]:
            pair["inputs"] = {dep: doc["inputs"][name] for dep, name in pair.get("dependencies", {}).items()}
            pair["file"] = path.name
            pairs[pair["id"]] = pair
    return pairs


PAIRS = labelled()


def task_spec(type_: str = "llm", description: str = "", parameters: dict[str, Any] | None = None,
          dependencies: list[str] | None = None, **expect: Any) -> events.TaskSpec:
    return events.TaskSpec(id="t", type=type_, description=description, parameters=parameters or {},
                           dependencies=dependencies or [],
                           expect=events.Expectations(**expect) if expect else None)


def scored(spec: events.TaskSpec, output: Any, *, duration_ms: float = 100.0, timeout_seconds: float = 10.0,
           **evidence: Any) -> Scores:
    return score(spec, output, duration_ms=duration_ms, timeout_seconds=timeout_seconds, **evidence)


def pair_scores(pair_id: str, **evidence: Any) -> Scores:
    pair = PAIRS[pair_id]
    spec = task_spec(pair["type"], pair["description"], pair.get("parameters"), list(pair["inputs"]))
    return scored(spec, pair["answer"], inputs=pair["inputs"], **evidence)


def reasons_text(scores: Scores, dimension: str) -> str:
    return " | ".join(scores.reasons[dimension])


def verdict(relevance: float, correctness: float = 1.0, completeness: float = 1.0) -> events.Verdict:
    return events.Verdict(model="local/judge", relevance=relevance, correctness=correctness,
                          completeness=completeness, reasons=["answers the question"])

"""`ymera models`: what is known of every model (measured quality, people's ratings, latency,
failures, cost) folded from the log into an `llm.Tracker`, each configured provider's keys as
the executors' pools see them, and the models people rated per agent and task type.

Model refs are `<provider>/<name>` throughout, as `LLMCalled` names them (its provider and
model). A `TaskAssessed` or `FeedbackGiven` names the model as the attempt's result did (the
name the provider answered with, or asked for); a name whose first part is a known provider
is taken as a ref, any other is matched to the run's last `LLMCalled` of that task (its
provider and model), and kept as it is when there is none (a row of its own).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import events
import llm
import store
from actors import Settings
from events import CallReserved, FeedbackGiven, LLMCalled, TaskAssessed

__all__ = ["ModelsReport", "add_models_command", "cmd_models", "read_models"]

DAY_SECONDS = 86_400.0  # a key's longest limit window: the pools fold the last day, as the executors do
_TYPES = ("LLMCalled", "TaskAssessed", "FeedbackGiven", "CallReserved")


@dataclass
class ModelsReport:
    tracker: llm.Tracker
    ledger: llm.Ledger
    catalogue_refs: list[str]  # the catalogue's models of the configured providers, in catalogue order
    configured: list[str]  # the configured providers, in the table's order
    through_seq: int = 0  # the log's head when it was read
    # key id -> (time of its last refusal, time of its last call that got an answer), epoch seconds
    refusals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not self.configured and not self.tracker.measures


async def read_models(settings: Settings, now: float | None = None) -> ModelsReport:
    """Fold the whole log's calls, scores and ratings, and its last day's reservations and calls
    into the configured providers' key pools."""
    models = llm.Models(settings, llm.Catalogue.load(settings.models_file))
    pools = {name: llm.KeyPool(endpoint) for name, endpoint in models.endpoints.items() if endpoint.keys}
    for pool in pools.values():
        # The executors give a key refused before they started another chance; here a refusal of
        # the last day shows, until a later call with the key got an answer (`_state`).
        pool.since = 0.0
    report = ModelsReport(
        tracker=llm.Tracker(), ledger=llm.Ledger(pools), configured=list(models.endpoints),
        catalogue_refs=[info.ref for info in models.catalogue.models.values() if info.provider in models.endpoints])
    if settings.log_path.exists():
        async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
            await _fold(report, log, (time.time() if now is None else now) - DAY_SECONDS)
    return report


async def _fold(report: ModelsReport, log: store.SqliteEventLog, since: float) -> None:
    # The whole history: a pass over every row of the log, but the rows of the four types only
    # leave SQLite, and they come a chunk at a time (blobs are not read: no field of them is).
    tracker, ledger = report.tracker, report.ledger
    called: dict[tuple[str, str], tuple[str, str]] = {}  # (run, task) -> (ref, task type) of its last call
    report.through_seq = log.head_seq
    async for rows in log.scan("type, ts, data", types=_TYPES):
        for kind, ts, data in rows:
            if kind == "CallReserved" and ts < since:
                continue
            event = events.decode(data)
            if isinstance(event, LLMCalled):
                ref = f"{event.provider}/{event.model}"
                called[(event.run_id, event.task_id)] = (ref, event.task_type)
                if event.replay_of is None:  # a replayed answer says nothing of the model now
                    tracker.called(ref, event.task_type, event.outcome, event.latency_ms, event.cost_usd)
                if ts >= since:
                    ledger.settle(llm.hold_of(event), event, event.run_id)
                    _note_key(report, event, ts)
            elif isinstance(event, CallReserved):
                ledger.reserve(event)
            elif isinstance(event, TaskAssessed):
                rated, task_type = _rated_model(called, event.run_id, event.task_id, event.model, event.task_type)
                if rated is not None and event.replay_of is None:  # a replayed result's score is the original's
                    tracker.assessed(rated, task_type, event.overall)
            elif isinstance(event, FeedbackGiven):
                rated, task_type = _rated_model(called, event.run_id, event.task_id, event.model, event.task_type)
                if rated is not None:
                    tracker.rated(event.agent, rated, task_type, event.rating)
    ledger.expire()


def _rated_model(called: dict[tuple[str, str], tuple[str, str]], run_id: str, task_id: str, model: str | None,
                 task_type: str) -> tuple[str | None, str]:
    ref, call_type = called.get((run_id, task_id), (None, ""))
    return llm.model_ref(model, ref), task_type or call_type


def _note_key(report: ModelsReport, event: LLMCalled, ts: float) -> None:
    if event.key_id is None:
        return
    refused, worked = report.refusals.get(event.key_id, (0.0, 0.0))
    if event.outcome == "auth":
        refused = ts
    elif event.outcome in llm.KEY_ANSWERED:
        worked = ts
    report.refusals[event.key_id] = (refused, worked)


# ---- what is shown -----------------------------------------------------------------------


def _measure(m: llm.Measure, **extra: Any) -> dict[str, Any]:
    return {"model": m.model, **extra, "calls": m.calls, "failures": m.failures,
            "failure_rate": round(m.failure_rate, 4), "latency_ms": m.latency_ms, "cost_usd": round(m.cost_usd, 10),
            "cost_per_call_usd": None if m.cost_per_call is None else round(m.cost_per_call, 10),
            "quality": m.quality, "scored": m.scored, "rating": m.rating, "rated": m.rated}


def _models(report: ModelsReport) -> list[llm.Measure]:
    """Every model seen in the log, most called first, then the catalogue's models of the
    configured providers that were not."""
    seen = report.tracker.by_model()
    known = {m.model for m in seen}
    return seen + [llm.Measure(model=ref) for ref in report.catalogue_refs if ref not in known]


def _keys(report: ModelsReport) -> dict[str, list[dict[str, Any]]]:
    keys: dict[str, list[dict[str, Any]]] = {}
    for provider in report.configured:
        pool = report.ledger.pools.get(provider)
        keys[provider] = [] if pool is None else [_state(report, k) for k in pool.state()]
    return keys


def _state(report: ModelsReport, key: dict[str, object]) -> dict[str, Any]:
    refused, worked = report.refusals.get(str(key["key"]), (0.0, 0.0))
    disabled = key["disabled"] if worked <= refused else None
    cooling = float(key["cooling_for"])  # type: ignore[arg-type]
    return {"key": key["key"], "disabled": disabled, "cooling_for": round(cooling, 1),
            "in_flight": key["in_flight"], "calls_last_minute": key["calls_last_minute"]}


def _ratings(report: ModelsReport) -> list[dict[str, Any]]:
    rows = [{"agent": agent or None, "task_type": task_type, "model": model, "rating": m.rating, "rated": m.rated}
            for (agent, task_type, model), m in report.tracker.ratings.items()]
    return sorted(rows, key=lambda r: (r["agent"] or "", r["task_type"], -(r["rating"] or 0.0), r["model"]))


def as_json(report: ModelsReport) -> dict[str, Any]:
    by_type = sorted((m for (_, task_type), m in report.tracker.measures.items() if task_type),
                     key=lambda m: (m.model, m.task_type))
    return {"models": [_measure(m, configured=m.model.partition("/")[0] in report.configured) for m in _models(report)],
            "by_task_type": [_measure(m, task_type=m.task_type) for m in by_type],
            "keys": _keys(report), "ratings": _ratings(report), "configured": report.configured,
            "through_seq": report.through_seq}


def as_text(report: ModelsReport) -> str:
    models = [[m.model, str(m.calls), _percent(m.failure_rate) if m.calls else "-", _number(m.latency_ms, "{:.0f}"),
               _usd(m.cost_per_call), _usd(m.cost_usd) if m.calls else "-", _score(m.quality, m.scored),
               _score(m.rating, m.rated)]
              for m in _models(report)]
    out = ["models", *_table(["model", "calls", "failed", "median ms", "$ per call", "$ total", "quality (n)",
                              "rating (n)"], models, right=range(1, 6))]
    out.append("")
    keys = _keys(report)
    if not report.configured:
        out.append(f"keys: {llm.NO_LLM}")
    else:
        rows = [[provider, k["key"], str(k["in_flight"]), str(k["calls_last_minute"]), _key_state(k)]
                for provider, states in keys.items() for k in states]
        rows += [[provider, "-", "-", "-", "takes no key"] for provider, states in keys.items() if not states]
        out += ["keys (the last day's reservations and calls)",
                *_table(["provider", "key", "in flight", "calls last min", "state"], rows, right=range(2, 4))]
    ratings = _ratings(report)
    if ratings:
        out += ["", "people's ratings by agent and task type",
                *_table(["agent", "task type", "model", "rating (n)"],
                        [[r["agent"] or "-", r["task_type"] or "-", r["model"], _score(r["rating"], r["rated"])]
                         for r in ratings])]
    return "\n".join(out)


def _key_state(key: dict[str, Any]) -> str:
    if key["disabled"] is not None:
        return f"refused: {events.one_line(key['disabled'])}"
    if key["cooling_for"] > 0:
        return f"cooling down for {math.ceil(key['cooling_for'])} s"
    return "ready"


def _table(header: list[str], rows: Sequence[list[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join((cell.rjust if i in right else cell.ljust)(widths[i]) for i, cell in enumerate(r)).rstrip()
            for r in [header, *rows]]


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _score(value: float | None, n: int) -> str:
    return "-" if value is None else f"{value:.2f} ({n})"


# ---- the command -------------------------------------------------------------------------


def add_models_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = sub.add_parser("models", help="every model's measured quality, people's ratings, latency, failures "
                                           "and cost; each provider's keys; the models people rated")
    models.add_argument("--json", action="store_true", help="one JSON object, for machines")
    models.set_defaults(fn=cmd_models)


async def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    report = await read_models(settings)
    if report.empty():
        raise events.YmeraError(f"no models to show: the event log {settings.log_path} records no model calls, "
                                f"and {llm.NO_LLM}")
    print(json.dumps(as_json(report), indent=2) if args.json else as_text(report))
    return 0

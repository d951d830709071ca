"""A synthetic event log for the monitor: workflows of LLM tasks on three models of two
providers, one task every `SPACING` seconds of event time, with degradations injected in
windows of time (an error burst, a slow provider, a quality drop on one model).

Built from events directly (no engine), deterministic for a seed: what a monitor folds from
the log of a real deployment, at the pace of an ordinary day, in a few seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import events

__all__ = ["MODELS", "SPACING", "START", "Degradation", "at", "build_log"]

START = 1_789_999_200.0  # the log's first event, epoch seconds (a whole hour)
SPACING = 1.5  # seconds of event time between two tasks' releases
TASKS_PER_WORKFLOW = 5
MODELS = ("openai/gpt-x", "openai/gpt-y", "anthropic/claude-z")
TYPES = (("code_generation", "coding_agent"), ("analysis", "analysis_agent"), ("documentation", None))


@dataclass(frozen=True)
class Degradation:
    """What goes wrong between `since` and `until` (seconds after START): "errors" (that share of
    attempts fail, then their retry succeeds), "slow" (the provider's attempts take 40-60 s) or
    "quality" (the model's scores drop by `amount`)."""

    kind: str
    since: float
    until: float
    provider: str = ""
    model: str = ""
    amount: float = 0.0

    def on(self, offset: float) -> bool:
        return self.since <= offset < self.until


def at(offset: float, start: float = START) -> datetime:
    return datetime.fromtimestamp(start + offset, UTC)


def build_log(tasks: int = 5000, degradations: tuple[Degradation, ...] = (), seed: int = 7,
              start: float = START, spacing: float = SPACING) -> list[events.Event]:
    """The events of `tasks` tasks from `start` (epoch seconds), one released every `spacing`
    seconds, in time order: each workflow's submission, admission, validation, releases,
    attempts, scores and end."""
    rng = random.Random(seed)
    timed: list[tuple[float, int, events.Event]] = []
    order = 0

    def emit(offset: float, event_type: type[events.Event], **fields: object) -> events.Event:
        nonlocal order
        event = event_type(id=events.new_id(), ts=at(offset, start), **fields)  # type: ignore[arg-type]
        order += 1
        timed.append((offset, order, event))
        return event

    for w in range(0, tasks, TASKS_PER_WORKFLOW):
        begin = w * spacing
        specs = [events.TaskSpec(id=f"t{i}", type=TYPES[(w + i) % 3][0], agent=TYPES[(w + i) % 3][1])
                 for i in range(min(TASKS_PER_WORKFLOW, tasks - w))]
        wf = f"wf-{w // TASKS_PER_WORKFLOW}"
        sub = emit(begin - 0.3, events.WorkflowSubmitted, workflow_id=wf, tasks=specs)
        run = {"workflow_id": wf, "run_id": sub.id}
        emit(begin - 0.2, events.WorkflowAdmitted, **run, principal="alice")
        emit(begin - 0.1, events.WorkflowValidated, **run, levels=[[s.id for s in specs]])
        last = begin
        for i, spec in enumerate(specs):
            last = max(last, _task(emit, rng, run, spec, begin + i * spacing, MODELS[(w + i) % len(MODELS)],
                                   degradations, start))
        emit(last + 0.01, events.WorkflowCompleted, **run, overall_quality=0.85)
    timed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in timed]


def _task(emit: Callable[..., events.Event], rng: random.Random, run: dict[str, str], spec: events.TaskSpec,
          ready: float, model: str, degradations: tuple[Degradation, ...], start: float) -> float:
    """One task's events from its release; returns when its last event happened."""
    provider = model.split("/")[0]
    on = [d for d in degradations if d.on(ready)]
    error_share = max([d.amount for d in on if d.kind == "errors"], default=0.02)
    slow = any(d.kind == "slow" and d.provider == provider for d in on)
    drop = sum(d.amount for d in on if d.kind == "quality" and d.model == model)
    attempt, t = 1, ready
    emit(t, events.TaskReady, **run, task_id=spec.id, attempt=1, spec=spec)
    if rng.random() < error_share:
        took = rng.uniform(0.2, 2.0)
        emit(t + took, events.TaskFailed, **run, task_id=spec.id, attempt=1, error="server error 503",
             kind="server_error", duration_ms=took * 1000, model=model)
        attempt, t = 2, t + took + 0.5
        emit(t - 0.49, events.TaskRetryScheduled, **run, task_id=spec.id, attempt=2, not_before=at(t, start),
             reason="server error 503")
        emit(t, events.TaskReady, **run, task_id=spec.id, attempt=2, spec=spec)
    took = rng.uniform(40.0, 60.0) if slow else rng.lognormvariate(0.5, 0.6)
    emit(t + took, events.TaskSucceeded, **run, task_id=spec.id, attempt=attempt, output="ok",
         duration_ms=took * 1000, model=model, cost_usd=0.002, usage={"total_tokens": 900})
    score = max(0.0, min(1.0, rng.uniform(0.8, 0.9) - drop))
    emit(t + took + 0.2, events.TaskAssessed, **run, task_id=spec.id, attempt=attempt, task_type=spec.type,
         agent=spec.agent, model=model, accuracy=score, completeness=score, consistency=score, efficiency=score,
         maintainability=score, overall=score)
    return t + took + 0.2

"""`ymera replay RUN --offline` and `ymera fork RUN --from TASK --model M`: an ended run again,
as a new run of the same workflow whose model calls are answered from the recorded run's
responses (no provider called, nothing paid), but for the tasks that run live; then both runs
side by side, task by task: model, quality, cost, and whether the output is the same.

A replay without --offline runs every task live again (the same submission, new calls). A
fork replays the tasks that do not depend on TASK and runs TASK, on model M, and every task
after it live.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

import msgspec

import events
import store
from actors import Settings
from actors.registry import TASK_KINDS
from bus import Bus
from events import Event, LLMCalled, TaskSucceeded, WorkflowSubmitted, new_id, now, subject_filter, workflow_filter

from ._cli import actors_flag, run_to_end
from ._client import UNSHOWN, run_view, stored
from ._progress import summary

__all__ = ["Row", "add_fork_command", "compare", "fork_of", "replay_arguments", "replay_of", "replay_run"]

_ENDED = ("completed", "failed", "cancelled")


def replay_arguments(replay: argparse.ArgumentParser) -> None:
    """RUN and its flags, on `ymera replay` (which without RUN re-folds the projections)."""
    replay.add_argument("run", nargs="?", metavar="RUN",
                        help="the ended run to replay: its id or a prefix of it (`ymera runs WORKFLOW` lists them)")
    replay.add_argument("--offline", action="store_true",
                        help="call no provider: every model call is answered by the recorded run's response")
    _common(replay)


def add_fork_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    fork = sub.add_parser("fork", help="run an ended run again from one task on another model (the tasks not "
                                       "depending on it replayed offline) and compare quality and cost")
    fork.add_argument("run", metavar="RUN", help="the ended run: its id or a prefix of it")
    fork.add_argument("--from", dest="from_task", required=True, metavar="TASK",
                      help="the task that runs live on --model, with every task that depends on it")
    fork.add_argument("--model", required=True, help="the model TASK runs on: <provider>/<name> or a catalogue name")
    _common(fork)
    fork.set_defaults(fn=cmd_fork)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, help="give up waiting after this many seconds and exit 1")
    actors_flag(parser)


async def replay_run(settings: Settings, args: argparse.Namespace) -> int:
    how = "offline replay" if args.offline else "live re-run"
    run, rows = await _again(settings, args, lambda original: replay_of(original, offline=args.offline),
                             lambda original, run_id: f"{how} of run {original.id} (workflow {original.workflow_id}) "
                                                      f"as run {run_id}")
    if args.offline:
        called = sum(r.live_calls for r in rows)
        same = sum(r.same for r in rows)
        print(f"{same} of {len(rows)} outputs reproduced; {called} provider calls")
        return 0 if run.state == "completed" and same == len(rows) and called == 0 else 1
    return 0 if run.state == "completed" else 1


async def cmd_fork(settings: Settings, args: argparse.Namespace) -> int:
    run, _ = await _again(settings, args, lambda original: fork_of(original, args.from_task, args.model),
                          lambda original, run_id: f"fork of run {original.id} (workflow {original.workflow_id}) "
                                                   f"from task {args.from_task} onto {args.model} as run {run_id}")
    return 0 if run.state == "completed" else 1


async def _again(settings: Settings, args: argparse.Namespace,
                 submission: Callable[[WorkflowSubmitted], WorkflowSubmitted],
                 title: Callable[[WorkflowSubmitted, str], str]) -> tuple[store.Run, list[Row]]:
    """Run the ended run `args.run` names again as `submission` makes it from the original, then
    print both side by side under `title` (after why the new run did not complete, if it did not)."""
    found: list[tuple[WorkflowSubmitted, list[Event]]] = []

    async def make(bus: Bus) -> WorkflowSubmitted:
        found.append(await ended_run(bus, args.run))
        return submission(found[0][0])

    run, seen = await run_to_end(settings, make, args.timeout, args.actors, name=f"ymera-{args.command}")
    original, before = found[0]
    if run.state != "completed":
        print(summary(run))
    rows = _rows(original, before, run.run_id, seen)
    print(compare(rows, title(original, run.run_id)))
    return run, rows


# ---- the new submission ---------------------------------------------------------------------------


def replay_of(original: WorkflowSubmitted, *, offline: bool) -> WorkflowSubmitted:
    """`original` again as a new run: every model call answered from its records when `offline`."""
    return msgspec.structs.replace(original, id=new_id(), ts=now(), replay_of=original.id,
                                   live_tasks=[] if offline else [t.id for t in original.tasks])


def fork_of(original: WorkflowSubmitted, task_id: str, model: str) -> WorkflowSubmitted:
    """`original` again from `task_id` on: it runs on `model`, it and every task that depends on it
    live, the others replayed from the records."""
    specs = {t.id: t for t in original.tasks}
    spec = specs.get(task_id)
    if spec is None:
        raise events.YmeraError(f"run {original.id} has no task {task_id!r}; its tasks: {', '.join(specs)}")
    kind = TASK_KINDS.get(spec.type)
    if kind is None or not kind.llm:
        raise events.YmeraError(f"task {task_id} is a {spec.type} task, which calls no model: fork from a task that "
                                f"does (llm or an agent task type)")
    live = _downstream(original, task_id)
    tasks = [msgspec.structs.replace(t, parameters={**t.parameters, "model": model}) if t.id == task_id else t
             for t in original.tasks]
    return msgspec.structs.replace(original, id=new_id(), ts=now(), tasks=tasks, replay_of=original.id,
                                   live_tasks=[t.id for t in original.tasks if t.id in live])


def _downstream(submission: WorkflowSubmitted, task_id: str) -> set[str]:
    """`task_id` and every task that depends on it, directly or not."""
    live = {task_id}
    grew = True
    while grew:
        grew = False
        for task in submission.tasks:
            if task.id not in live and live.intersection(task.dependencies):
                live.add(task.id)
                grew = True
    return live


async def ended_run(bus: Bus, prefix: str) -> tuple[WorkflowSubmitted, list[Event]]:
    """The submission of the run whose id begins with `prefix`, and every event of its workflow;
    an error a user reads when there is none, several, or it has not ended."""
    if not prefix:
        raise events.YmeraError("name a run: its id or a prefix of it (`ymera runs WORKFLOW` lists them)")
    submissions = [e for e in await stored(bus, subject_filter(WorkflowSubmitted), UNSHOWN)
                   if isinstance(e, WorkflowSubmitted) and e.id.startswith(prefix)]
    if not submissions:
        raise events.YmeraError(f"no run {prefix} in the stream (`ymera runs WORKFLOW` lists a workflow's runs)")
    if len(submissions) > 1:
        raise events.YmeraError(f"run {prefix} is ambiguous: {len(submissions)} runs begin with it "
                                f"({', '.join(s.id for s in submissions[:5])})")
    original = submissions[0]
    seen = await stored(bus, workflow_filter(original.workflow_id), UNSHOWN)
    state = run_view(seen, original.id).state
    if state not in _ENDED:
        raise events.YmeraError(f"run {original.id} of workflow {original.workflow_id} is {state}: only an ended run "
                                f"can be replayed or forked")
    return original, seen


# ---- both runs side by side -----------------------------------------------------------------------


class Row(msgspec.Struct, frozen=True):
    task_id: str
    model: str | None
    quality: float | None
    cost_usd: float
    new_model: str | None
    new_quality: float | None
    new_cost_usd: float
    live_calls: int  # calls the new run made to a provider (not answered from the records)
    replayed: bool  # every call of the new run's task was answered from the records
    same: bool  # the new run's output is the original's


def _rows(original: WorkflowSubmitted, before: list[Event], run_id: str, after: list[Event]) -> list[Row]:
    old, new = run_view(before, original.id), run_view(after, run_id)
    was, now_ = _TaskRecords(before, original.id), _TaskRecords(after, run_id)
    rows = []
    for task in original.tasks:
        o, n = old.tasks.get(task.id), new.tasks.get(task.id)
        calls = now_.calls.get(task.id, [])
        rows.append(Row(task.id, o.model if o else None, o.quality if o else None, was.cost(task.id),
                        n.model if n else None, n.quality if n else None, now_.cost(task.id),
                        live_calls=sum(c.replay_of is None for c in calls),
                        replayed=bool(calls) and all(c.replay_of is not None for c in calls),
                        same=was.output(task.id) == now_.output(task.id)))
    return rows


class _TaskRecords:
    """One run's model calls and last successful output, by task (one pass over the events)."""

    def __init__(self, seen: list[Event], run_id: str) -> None:
        self.calls: dict[str, list[LLMCalled]] = {}
        self.succeeded: dict[str, TaskSucceeded] = {}
        for event in seen:
            if isinstance(event, LLMCalled) and event.run_id == run_id:
                self.calls.setdefault(event.task_id, []).append(event)
            elif isinstance(event, TaskSucceeded) and event.run_id == run_id:
                self.succeeded[event.task_id] = event

    def cost(self, task_id: str) -> float:
        """What the run's calls for the task cost, every attempt's (a replayed call costs 0)."""
        return sum(c.cost_usd or 0.0 for c in self.calls.get(task_id, ()))

    def output(self, task_id: str) -> bytes | None:
        """The task's last successful output, as bytes to compare (a large one by its blob digest)."""
        last = self.succeeded.get(task_id)
        if last is None:
            return None
        ref = last.blobs.get("output")
        return ref.digest.encode() if ref is not None else msgspec.json.encode(last.output)


def compare(rows: list[Row], title: str) -> str:
    """Both runs, task by task, and their totals, as a table."""
    header = ("task", "model", "quality", "cost", "new model", "quality", "cost", "output")
    lines = [tuple(header)]
    for r in rows:
        output = "same" if r.same else "differs"
        lines.append((r.task_id, r.model or "-", _q(r.quality), _usd(r.cost_usd),
                      (r.new_model or "-") + (" (replayed)" if r.replayed else ""), _q(r.new_quality),
                      _usd(r.new_cost_usd), output))
    lines.append(("total", "", _q(_mean(r.quality for r in rows)), _usd(sum(r.cost_usd for r in rows)), "",
                  _q(_mean(r.new_quality for r in rows)), _usd(sum(r.new_cost_usd for r in rows)),
                  f"{sum(r.same for r in rows)} of {len(rows)} same"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join([title, *table])


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _q(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _usd(value: float) -> str:
    return f"${value:.6f}".rstrip("0").rstrip(".") if value else "$0"

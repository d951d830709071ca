"""What the distributor emits, decided from its state alone (and, for timers, the clock).

Every id is derived from the workflow's submission and the decision's identity (task,
attempt), never from whichever event prompted it: deciding the same thing twice, before and
after a crash, emits the same ids, so the copy is dropped by the stream and by the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Literal

from config import Settings
from events import (
    PRIORITY_RANK,
    BlobRef,
    CancelRefused,
    Event,
    TaskReady,
    TaskResult,
    TaskRetryScheduled,
    TaskSkipped,
    TaskTimedOut,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    derive_id,
    now,
)

from ._state import GRACE_SECONDS, CancelAsk, DistributorState, TaskState, TaskStatus, WorkflowState, can_retry

__all__ = ["activate_queued", "cancel_refusal", "decide", "retry_delay", "timers"]

ACTOR = "distributor"


def finally_failed(task: TaskState) -> bool:
    return task.status == "failed" or (task.status == "attempt_failed" and not can_retry(task))


def retry_delay(wf: WorkflowState, task: TaskState) -> float:
    """Exponential backoff with jitter in [50%, 100%], the jitter fixed by (workflow, task, attempt);
    a quality re-run's retries back off from the start again."""
    policy = task.spec.retry
    failed = task.attempt - (task.kept.attempt if task.kept is not None else 0)
    base = min(policy.max_delay_seconds,
               policy.initial_delay_seconds * policy.backoff_multiplier ** (failed - 1))
    digest = hashlib.sha256(f"{wf.submission_id}/{task.spec.id}/{task.attempt}".encode()).digest()
    jitter = 0.5 + 0.5 * int.from_bytes(digest[:4], "big") / 0xFFFFFFFF
    return max(base * jitter, task.retry_after or 0.0)


def decide(state: DistributorState, wf: WorkflowState, settings: Settings, at: datetime | None,
           cause: str | None, read_until: datetime | None = None, *, admins: Collection[str] | None = None,
           ) -> list[Event]:
    """Events one workflow needs now. `at` is given only on timer passes (retries due, timeouts);
    `read_until`, when the distributor is behind the stream, is how far its reading has got;
    `admins`, where a cancel's principal is its key's, who besides the run's own may cancel it
    (None: principals are what clients say, and every cancel is honoured)."""
    key = settings.id_key
    out, cancelled = _judge_cancels(wf, admins, at, key)
    if cancelled is not None:
        return [*out, _end(wf, cause, "cancelled", key=key, reason=cancelled)]
    if not wf.activated:
        return out
    for task in wf.having("attempt_failed", "below_quality", "failed"):
        if task.status == "attempt_failed" and can_retry(task):
            assert task.failed_at is not None
            not_before = task.failed_at + timedelta(seconds=retry_delay(wf, task))
            out.append(TaskRetryScheduled(
                id=derive_id(wf.submission_id, "TaskRetryScheduled", task.spec.id, task.attempt + 1, key=key),
                ts=_now(at), workflow_id=wf.workflow_id, run_id=wf.submission_id, causation_id=cause, actor=ACTOR,
                task_id=task.spec.id, attempt=task.attempt + 1, not_before=not_before,
                reason=task.error or "attempt failed"))
        elif task.status == "below_quality":
            # One re-run beyond the retry policy, due at once (from the score, so a re-decision is identical).
            assert task.scored_at is not None
            assert task.upgrade is not None
            out.append(TaskRetryScheduled(
                id=derive_id(wf.submission_id, "TaskRetryScheduled", task.spec.id, task.attempt + 1, key=key),
                ts=_now(at), workflow_id=wf.workflow_id, run_id=wf.submission_id, causation_id=cause, actor=ACTOR,
                task_id=task.spec.id, attempt=task.attempt + 1, not_before=task.scored_at, reason=task.upgrade))
        elif finally_failed(task):
            out.extend(_skip_dependents(wf, task, cause, at, key))
    out.extend(_release(wf, settings, at, cause))
    if at is not None:
        out.extend(timers(wf, settings, at, cause, read_until))
    end = _maybe_end(wf, cause, at, key)
    if end is not None:
        out.append(end)
    return out


def cancel_refusal(wf: WorkflowState, ask: CancelAsk, admins: Collection[str] | None) -> str | None:
    """Why `ask` may not cancel the run, or None when it may: from its submitter or one of
    `admins` (YMERA_ADMINS). `admins` None: a principal is whatever a client says (the reader
    checks no client's signature: YMERA_NATS_AUTH or signing off), and any cancel is honoured."""
    if admins is None:
        return None
    if ask.principal is not None and (ask.principal == wf.principal or ask.principal in admins):
        return None
    refused = f"cancel of run {wf.submission_id} of workflow {wf.workflow_id} refused"
    if ask.principal is None:
        return (f"{refused}: the cancel names no principal, and only its submitter {wf.principal!r} or an admin "
                "(YMERA_ADMINS) may cancel it")
    return (f"{refused}: it was submitted by {wf.principal!r}, and {ask.principal!r} may cancel only its own runs "
            "(YMERA_ADMINS names the principals that may cancel any)")


def _judge_cancels(wf: WorkflowState, admins: Collection[str] | None, at: datetime | None,
                   key: bytes | None) -> tuple[list[Event], str | None]:
    """The refusals of the cancels asked for, in order, up to the first one honoured, and that
    one's reason (None: none is). A refusal folded forgets its cancel; an honoured one ends the run."""
    refusals: list[Event] = []
    for ask in wf.cancels:
        reason = cancel_refusal(wf, ask, admins)
        if reason is None:
            return refusals, ask.reason
        refusals.append(CancelRefused(
            id=derive_id(wf.submission_id, "CancelRefused", ask.id, key=key), ts=_now(at),
            workflow_id=wf.workflow_id, run_id=wf.submission_id, causation_id=ask.id, actor=ACTOR,
            principal=ask.principal or "", submitted_by=wf.principal, reason=reason))
    return refusals, None


def activate_queued(state: DistributorState, settings: Settings, at: datetime | None) -> list[Event]:
    """Start validated workflows, oldest first, while workflow slots are free."""
    free = settings.max_concurrent_workflows - state.active_slots
    out: list[Event] = []
    if free <= 0:
        return out
    queued = sorted((w for w in state.workflows.values() if w.validated_seq is not None and not w.activated
                     and not w.cancels), key=lambda w: w.validated_seq or 0)
    for wf in queued[:free]:
        released = _release(wf, settings, at, None, activating=True)
        out.extend(released)
    return out


def _release(wf: WorkflowState, settings: Settings, at: datetime | None, cause: str | None,
             activating: bool = False) -> list[Event]:
    if not (wf.activated or activating) or wf.validated_seq is None:
        return []
    candidates = [wf.tasks[task_id] for task_id in wf.ready]
    if at is not None:
        candidates.extend(t for t in wf.having("retry_wait") if t.retry_at is not None and t.retry_at <= at)
    if not candidates:
        return []
    candidates.sort(key=lambda t: (PRIORITY_RANK[t.spec.priority], t.index))
    room = len(candidates) if wf.max_parallel is None else max(0, wf.max_parallel - wf.running)
    out: list[Event] = []
    for task in candidates[:room]:
        attempt = task.attempt + 1
        out.append(TaskReady(
            id=derive_id(wf.submission_id, "TaskReady", task.spec.id, attempt, key=settings.id_key), ts=_now(at),
            workflow_id=wf.workflow_id, run_id=wf.submission_id, causation_id=cause, actor=ACTOR, task_id=task.spec.id,
            attempt=attempt, spec=task.spec, inputs=_inputs(wf, task), input_refs=_input_refs(wf, task),
            untrusted_inputs=[dep for dep in dict.fromkeys(task.spec.dependencies) if wf.tasks[dep].untrusted],
            timeout_seconds=task.spec.timeout_seconds or settings.task_timeout_seconds, budget_usd=wf.budget_usd,
            tried_models=list(task.tried_models), upgrade=task.upgrade,
            replay_of=None if task.spec.id in wf.live_tasks else wf.replay_of))
    return out


def _inputs(wf: WorkflowState, task: TaskState) -> dict[str, Any]:
    """The direct dependencies' outputs that travel inline."""
    return {dep: wf.tasks[dep].output for dep in task.spec.dependencies if wf.tasks[dep].output_ref is None}


def _input_refs(wf: WorkflowState, task: TaskState) -> dict[str, BlobRef]:
    """... and those too large to: they stay blobs, which the executor loads."""
    return {dep: ref for dep in task.spec.dependencies if (ref := wf.tasks[dep].output_ref) is not None}


def timers(wf: WorkflowState, settings: Settings, at: datetime, cause: str | None,
           read_until: datetime | None = None) -> list[Event]:
    """Attempts to give up on: past their time limit, or silent for too long once started.

    Silence is measured up to `read_until` when given: a distributor behind the stream (a
    burst of 1,000 heartbeats, a slow host) has not read the latest heartbeats yet, and must
    not take its own lag for the executor's."""
    lost_after = timedelta(seconds=settings.lost_after_seconds)
    heard_until = at if read_until is None else min(at, read_until)
    given_up: list[tuple[TaskState, str]] = []
    for task_id in wf.by_status.get("running", ()):
        task = wf.tasks[task_id]
        if task.released_at is None or task.timing_out == task.attempt:
            continue
        if task.last_seen is not None and heard_until - task.last_seen > lost_after:
            given_up.append((task, f"executor lost: no heartbeat for {lost_after.total_seconds():g}s"))
        elif at > (task.due or task.released_at + timedelta(seconds=settings.task_timeout_seconds + GRACE_SECONDS)):
            given_up.append((task, f"no result within the {task.limit or settings.task_timeout_seconds:g}s time limit"))
    given_up.sort(key=lambda found: found[0].index)  # in the workflow's order (sorting only these)
    return [TaskTimedOut(
        id=derive_id(wf.submission_id, "TaskTimedOut", task.spec.id, task.attempt, key=settings.id_key), ts=at,
        workflow_id=wf.workflow_id, run_id=wf.submission_id, causation_id=cause, actor=ACTOR,
        task_id=task.spec.id, attempt=task.attempt, reason=reason) for task, reason in given_up]


def _skip_dependents(wf: WorkflowState, failed: TaskState, cause: str | None, at: datetime | None,
                     key: bytes | None) -> list[Event]:
    """Skip every waiting task downstream of `failed`, each naming the dependency that stopped it."""
    out: list[Event] = []
    frontier, skipped = [failed.spec.id], set()
    while frontier:
        parent = frontier.pop()
        for child_id in wf.dependents.get(parent, ()):
            if child_id in skipped or wf.tasks[child_id].status != "waiting":
                continue
            skipped.add(child_id)
            frontier.append(child_id)
            out.append(TaskSkipped(
                id=derive_id(wf.submission_id, "TaskSkipped", child_id, key=key), ts=_now(at),
                workflow_id=wf.workflow_id, run_id=wf.submission_id, causation_id=cause, actor=ACTOR, task_id=child_id,
                reason=f"dependency {parent} did not succeed"))
    return out


def _settled(wf: WorkflowState) -> bool:
    """Every task succeeded and scored (a success without its score waits for the assessor's),
    skipped, or failed for good."""
    if wf.unscored or any(wf.by_status.get(status) for status in _UNSETTLED):
        return False
    return all(finally_failed(t) for t in wf.having("attempt_failed"))


_UNSETTLED: tuple[TaskStatus, ...] = ("waiting", "running", "retry_wait", "scoring", "below_quality")


def _maybe_end(wf: WorkflowState, cause: str | None, at: datetime | None, key: bytes | None) -> Event | None:
    if not _settled(wf):
        return None
    failed = [t for t in wf.tasks.values() if t.status != "succeeded"]
    return _end(wf, cause, "failed" if failed else "completed", at, key=key)


def _end(wf: WorkflowState, cause: str | None, how: str, at: datetime | None = None, *,
         key: bytes | None = None, reason: str = "") -> Event:
    # One id for every way a workflow can end: it ends exactly once.
    common: dict[str, Any] = {
        "id": derive_id(wf.submission_id, "WorkflowEnded", key=key), "ts": _now(at), "workflow_id": wf.workflow_id,
        "run_id": wf.submission_id, "causation_id": cause, "actor": ACTOR,
        "results": [_result(t) for t in wf.tasks.values()],
    }
    qualities = [t.quality for t in wf.tasks.values() if t.quality is not None]
    quality = round(sum(qualities) / len(qualities), 4) if qualities else None
    elapsed = (_now(at) - wf.submitted_at).total_seconds() * 1000
    if how == "cancelled":
        return WorkflowCancelled(id=common["id"], ts=common["ts"], workflow_id=wf.workflow_id,
                                 run_id=wf.submission_id, causation_id=cause,
                                 actor=ACTOR, reason=reason)
    if how == "completed":
        return WorkflowCompleted(**common, overall_quality=quality, duration_ms=elapsed)
    first = min((t for t in wf.tasks.values() if t.status != "succeeded" and t.status != "skipped"),
                key=lambda t: t.index, default=None)
    reason = f"task {first.spec.id} failed: {first.error}" if first else "tasks did not succeed"
    return WorkflowFailed(**common, reason=reason, overall_quality=quality, duration_ms=elapsed)


def _result(task: TaskState) -> TaskResult:
    status: Literal["succeeded", "failed", "skipped"] = (
        "succeeded" if task.status == "succeeded" else "skipped" if task.status == "skipped" else "failed")
    return TaskResult(task_id=task.spec.id, status=status, attempts=task.attempt, quality=task.quality,
                      error=task.error if status != "succeeded" else None, duration_ms=task.duration_ms,
                      model=task.model, cost_usd=task.cost_usd)


def _now(at: datetime | None) -> datetime:
    return at or now()

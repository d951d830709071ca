"""The event vocabulary: codec, subjects, deterministic ids and every bad-input reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest

import events
from events import (
    MAX_EVENT_BYTES,
    MalformedEvent,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    WorkflowSubmitted,
    decode,
    decode_message,
    derive_id,
    encode,
    subject_of,
)

TS = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def one_of_each() -> list[events.Event]:
    """A minimal valid instance of every event type, built from the catalog."""
    base = {"id": "00000000-0000-0000-0000-000000000001", "ts": TS, "workflow_id": "wf_1"}
    required = {
        "task_id": "t1", "attempt": 1, "executor": "ex-1", "error": "boom", "reason": "why",
        "principal": "alice", "passed": True, "subject": "ymera.x", "excerpt": "{", "size": 1,
        "alert": "latency", "severity": "warning", "message": "slow",
        "accuracy": 0.5, "completeness": 0.5, "consistency": 0.5, "efficiency": 0.5,
        "maintainability": 0.5, "overall": 0.5, "not_before": TS, "provider": "groq", "model": "m", "holds_until": TS,
        "rating": 0.5, "stream": "YMERA", "head_seq": 1, "head_hash": "ab", "key_id": "k", "public_key": "p",
        "signature": "s", "submission_id": "sub-1", "findings": [], "refused": False, "redacted": False,
        "from_task": "t0", "blocked": False, "tool": "files", "epoch": "0123456789ab", "first": 0,
        "leaves": b"\x00" * 16, "call": 1, "name": "git_log", "raised_id": "a1",
    }
    out = []
    for cls in events.EVENT_TYPES.values():
        names = {f.name for f in msgspec.structs.fields(cls)}
        out.append(cls(**base, **{k: v for k, v in required.items() if k in names}))
    return out


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: events.Event) -> None:
    data = encode(event)
    assert json.loads(data)["type"] == type(event).__name__
    assert decode(data) == event
    assert decode_message(subject_of(event), data) == event


@pytest.mark.parametrize(
    ("event", "subject"),
    [
        (WorkflowSubmitted(id="a", ts=TS, workflow_id="wf_1"), "ymera.wf.wf_1.submitted"),
        (TaskStarted(id="a", ts=TS, workflow_id="wf_1", task_id="t-2", attempt=1, executor="e"),
         "ymera.task.wf_1.t-2.started"),
        (events.MessageRejected(id="a", ts=TS, workflow_id="_", subject="x", reason="r", excerpt="", size=0),
         "ymera.sec._.rejected"),
        (events.AlertRaised(id="a", ts=TS, workflow_id="_", alert="a", severity="info", message="m"),
         "ymera.alert._.raised"),
    ],
)
def test_subject_is_computed_from_the_event(event: events.Event, subject: str) -> None:
    assert subject_of(event) == subject


def test_every_event_type_has_its_own_subject_verb() -> None:
    pairs = [(cls.domain, cls.verb) for cls in events.EVENT_TYPES.values()]
    assert len(set(pairs)) == len(pairs)


def test_derived_ids_are_stable_and_distinct() -> None:
    cause = "3f1e4a62-1111-4d7e-9c1f-000000000000"
    assert derive_id(cause, "TaskReady", "t1", 1) == derive_id(cause, "TaskReady", "t1", 1)
    assert derive_id(cause, "TaskReady", "t1", 1) != derive_id(cause, "TaskReady", "t1", 2)
    assert derive_id(cause, "TaskReady", "t1", 1) != derive_id(cause, "TaskStarted", "t1", 1)
    # Part boundaries count: ("t1", "1") and ("t11",) must not collide.
    assert derive_id(cause, "k", "t1", "1") != derive_id(cause, "k", "t11")


def test_a_redelivered_input_yields_the_same_output_event_but_its_clock() -> None:
    def handle(cause: TaskStarted) -> TaskSucceeded:
        return TaskSucceeded(id=derive_id(cause.id, "TaskSucceeded", cause.task_id, cause.attempt),
                             ts=events.now(), workflow_id=cause.workflow_id, causation_id=cause.id,
                             task_id=cause.task_id, attempt=cause.attempt, output="done")

    started = TaskStarted(id=events.new_id(), ts=TS, workflow_id="w", task_id="t", attempt=1, executor="e")
    first, second = handle(started), handle(started)
    assert first.id == second.id
    assert msgspec.structs.replace(first, ts=TS) == msgspec.structs.replace(second, ts=TS)


def test_workflow_submission_carries_the_task_fields_of_the_guide() -> None:
    spec = TaskSpec(id="design", type="code_generation", agent="architect", description="Design it",
                    parameters={"language": "python"}, dependencies=[], priority="HIGH",
                    timeout_seconds=30.0, retry=events.RetryPolicy(max_attempts=2))
    wf = WorkflowSubmitted(id=events.new_id(), ts=TS, workflow_id="wf", tasks=[spec])
    assert decode(encode(wf)) == wf


def _message(**fields: object) -> bytes:
    doc = {"type": "TaskStarted", "id": "e1", "ts": "2026-01-02T03:04:05Z", "workflow_id": "wf",
           "task_id": "t", "attempt": 1, "executor": "ex"}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello", "not valid JSON: JSON is malformed: invalid character (byte 0)"),
        (b'{"type":', "not valid JSON: Input data was truncated"),
        (b"[1, 2]", "not a valid event: Expected `object`, got `array`"),
        (_message(type="TaskExploded"), "unknown event type 'TaskExploded' (`ymera schema` lists them)"),
        (_message(type=None), "not a valid event: Object missing required field `type`"),
        (_message(attempt="1"), "not a valid event: Expected `int`, got `str` - at `$.attempt`"),
        (_message(attempt=0), "not a valid event: Expected `int` >= 1 - at `$.attempt`"),
        (_message(executor=None), "not a valid event: Object missing required field `executor`"),
        (_message(ts="yesterday"), "not a valid event: Invalid RFC3339 encoded datetime - at `$.ts`"),
        (_message(task_id="a.b"),
         "not a valid event: Expected `str` matching regex '^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$' - at `$.task_id`"),
        (_message(workflow_id="wf.>"),
         "not a valid event: Expected `str` matching regex '^(_|[A-Za-z0-9][A-Za-z0-9_-]{0,127})$' - at "
         "`$.workflow_id`"),
        (b'{"type":"WorkflowSubmitted","id":"x","ts":"2026-01-02T03:04:05Z","workflow_id":"w",'
         b'"tasks":[{"id":"a","type":"noop","dependancies":["b"]}]}',
         "not a valid event: Object contains unknown field `dependancies` - at `$.tasks[0]`"),
        (b'{"type":"WorkflowSubmitted","id":"x","ts":"2026-01-02T03:04:05Z","workflow_id":"w",'
         b'"tasks":[{"id":"a","type":"noop","priority":"URGENT"}]}',
         "not a valid event: Invalid enum value 'URGENT' - at `$.tasks[0].priority`"),
        (b" " * (MAX_EVENT_BYTES + 1),
         f"message is {MAX_EVENT_BYTES + 1} bytes, over the {MAX_EVENT_BYTES}-byte event limit "
         "(large values must travel as blobs)"),
    ],
    ids=["not-json", "truncated", "not-an-object", "unknown-tag", "missing-tag", "wrong-type", "out-of-range",
         "missing-field", "bad-timestamp", "task-id-not-a-subject-token", "workflow-id-wildcard",
         "misspelt-task-field", "unknown-priority", "oversized"],
)
def test_bad_input_is_refused_with_a_reason_a_user_can_read(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent) as info:
        decode(data)
    assert info.value.reason == reason
    assert str(info.value) == reason


def test_an_event_on_a_subject_not_its_own_is_refused() -> None:
    data = _message()
    with pytest.raises(MalformedEvent) as info:
        decode_message("ymera.task.other.t.started", data)
    assert info.value.reason == (
        "TaskStarted e1 was published on ymera.task.other.t.started but belongs on ymera.task.wf.t.started"
    )


def test_excerpt_is_bounded() -> None:
    assert events.excerpt(b"x" * 10) == "x" * 10
    assert events.excerpt(b"y" * 10_000) == "y" * 200 + "…"
    assert events.excerpt(b"\xff\xfe" + b"z" * 3) == "\ufffd\ufffdzzz"


def test_schema_describes_every_event_and_the_subject_rule() -> None:
    schema = events.json_schema()
    names = {ref["$ref"].rsplit("/", 1)[1] for ref in schema["anyOf"]}
    assert names == set(events.EVENT_TYPES)
    assert "ymera.<domain>.<workflow_id>[.<task_id>].<verb>" in schema["description"]
    submitted = schema["$defs"]["WorkflowSubmitted"]
    assert set(submitted["required"]) >= {"type", "id", "ts", "workflow_id"}


def test_package_exports_are_sorted_and_complete() -> None:
    for package in (events,):
        assert package.__all__ == sorted(package.__all__, key=lambda n: (not n.isupper(), n))
        assert all(hasattr(package, name) for name in package.__all__)


def test_a_run_is_named_by_its_submission_and_every_other_event_names_its_run() -> None:
    submitted = WorkflowSubmitted(id="run-1", ts=TS, workflow_id="wf_1")
    started = TaskStarted(id="a", ts=TS, workflow_id="wf_1", run_id="run-1", task_id="t", attempt=1, executor="e")
    assert (events.run_of(submitted), events.run_of(started)) == ("run-1", "run-1")
    assert json.loads(encode(started))["run_id"] == "run-1"
    # Schema evolution: an event written before runs decodes, naming no run; one with none omits the field.
    older = b'{"type":"TaskStarted","id":"a","ts":"2026-01-02T03:04:05Z","workflow_id":"wf_1","task_id":"t",' \
            b'"attempt":1,"executor":"e"}'
    assert events.run_of(decode(older)) == ""
    assert "run_id" not in json.loads(encode(submitted))


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: type(e).__name__)
def test_a_subject_filter_matches_exactly_its_event_type(event: events.Event) -> None:
    def matches(pattern: str, subject: str) -> bool:
        p, s = pattern.split("."), subject.split(".")
        return len(p) == len(s) and all(a in ("*", b) for a, b in zip(p, s, strict=True))

    assert [name for name, cls in events.EVENT_TYPES.items()
            if matches(events.subject_filter(cls), subject_of(event))] == [type(event).__name__]

"""Large values travel as content-addressed blobs and come back unchanged."""

from __future__ import annotations

import hashlib

import pytest

import events
from events import INLINE_LIMIT, MAX_EVENT_BYTES, BlobError, BlobRef, EventTooLarge, TaskSucceeded, offload, resolve


class Bucket:
    """The put/get pair `offload` and `resolve` take; here a dict, on the bus a JetStream bucket."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    async def put(self, ref: BlobRef, data: bytes) -> None:
        self.items[ref.digest] = data

    async def get(self, ref: BlobRef) -> bytes:
        return self.items[ref.digest]


def succeeded(output: object) -> TaskSucceeded:
    return TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="w", task_id="t", attempt=1,
                         output=output)


async def test_small_events_travel_inline() -> None:
    bucket = Bucket()
    event = succeeded("short")
    sent, data = await offload(event, bucket.put)
    assert sent is event
    assert data == events.encode(event)
    assert bucket.items == {}


async def test_a_large_output_moves_to_a_blob_named_by_its_sha256() -> None:
    bucket = Bucket()
    output = {"code": "x = 1\n" * 30_000}
    sent, data = await offload(succeeded(output), bucket.put)
    assert len(data) < 1024
    assert sent.output is None
    ref = sent.blobs["output"]
    assert ref.digest == hashlib.sha256(bucket.items[ref.digest]).hexdigest()
    assert ref.size == len(bucket.items[ref.digest])
    back = await resolve(events.decode(data), bucket.get)
    assert back.output == output
    assert back.blobs == {}


async def test_the_same_content_is_one_blob() -> None:
    bucket = Bucket()
    first, _ = await offload(succeeded("y" * INLINE_LIMIT), bucket.put)
    second, _ = await offload(succeeded("y" * INLINE_LIMIT), bucket.put)
    assert first.blobs == second.blobs
    assert len(bucket.items) == 1


async def test_a_blob_that_does_not_match_its_digest_is_refused() -> None:
    bucket = Bucket()
    sent, _ = await offload(succeeded("z" * INLINE_LIMIT * 2), bucket.put)
    ref = sent.blobs["output"]
    bucket.items[ref.digest] = b'"tampered"'
    with pytest.raises(BlobError) as info:
        await resolve(sent, bucket.get)
    assert str(info.value) == f"blob {ref.digest[:12]}…: content does not match its digest (10 bytes read)"


async def test_an_event_too_large_without_blob_fields_is_refused_before_publishing() -> None:
    bucket = Bucket()
    huge = events.TaskFailed(id="e", ts=events.now(), workflow_id="w", task_id="t", attempt=1,
                             error="e" * MAX_EVENT_BYTES)
    with pytest.raises(EventTooLarge) as info:
        await offload(huge, bucket.put)
    size = len(events.encode(huge))
    assert str(info.value) == (
        f"TaskFailed is {size} bytes after moving its large fields to blobs, over the {MAX_EVENT_BYTES}-byte "
        "event limit"
    )


async def test_a_reader_may_keep_fields_it_never_reads_as_references() -> None:
    bucket = Bucket()
    tasks = [events.TaskSpec(id=f"t{i}", type="noop", description="d" * 100) for i in range(1000)]
    submitted = events.WorkflowSubmitted(id="s", ts=events.now(), workflow_id="w", tasks=tasks)
    sent, _ = await offload(submitted, bucket.put)
    assert sent.tasks == []
    assert set(sent.blobs) == {"tasks"}
    kept = await resolve(sent, bucket.get, keep={"WorkflowSubmitted.tasks"})
    assert kept is sent
    assert (await resolve(sent, bucket.get, keep={"TaskSucceeded.output"})) == submitted


async def test_a_dependency_output_held_in_a_blob_travels_as_a_typed_reference() -> None:
    bucket = Bucket()
    sent, _ = await offload(succeeded(["x" * 100] * 1000), bucket.put)
    ref = sent.blobs["output"]
    # An output that looks like a reference is an output: only `input_refs` names blobs.
    ready = events.TaskReady(id="r", ts=events.now(), workflow_id="wf", task_id="b", attempt=1,
                             inputs={"c": {"$blob": "d", "size": 1}}, input_refs={"a": ref})
    again = events.decode(events.encode(ready))
    assert isinstance(again, events.TaskReady)
    assert (again.input_refs, again.inputs) == ({"a": ref}, {"c": {"$blob": "d", "size": 1}})
    assert await events.load_blob(again.input_refs["a"], bucket.get) == ["x" * 100] * 1000


async def test_a_blob_that_is_not_json_is_refused_with_the_reason() -> None:
    bucket = Bucket()
    data = b"\xff not json"
    ref = events.blob_ref(data)
    bucket.items[ref.digest] = data
    with pytest.raises(BlobError) as info:
        await events.load_blob(ref, bucket.get)
    assert str(info.value) == (f"blob {ref.digest[:12]}…: content is not a valid value: "
                               "JSON is malformed: invalid character (byte 0)")


async def test_a_value_over_the_blob_limit_is_refused_with_its_size() -> None:
    bucket = Bucket()
    text = "v" * events.MAX_BLOB_BYTES
    with pytest.raises(EventTooLarge) as info:
        await offload(succeeded(text), bucket.put)
    assert str(info.value) == (f"TaskSucceeded.output is {events.MAX_BLOB_BYTES + 2} bytes, "
                               f"over the {events.MAX_BLOB_BYTES}-byte limit of a blob")
    assert (info.value.field, info.value.limit) == ("output", events.MAX_BLOB_BYTES)
    assert bucket.items == {}

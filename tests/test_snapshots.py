"""Snapshots: a restarted actor loads its state at seq N and folds only the stream after N.

Real nats-server, real object store bucket, real SQLite log. What is counted is the number
of events folded (the runtime's "rebuilt" log line), never time.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from structlog.testing import capture_logs

import bus
import events
from actors import Actor, Settings, load_settings, rebuild, run_actor, run_all
from actors import _runtime as runtime
from actors._archive import HistoryDropped, matches
from actors._snapshot import Snapshots, check_state_fields, encode_snapshot
from actors.assessor._actor import Assessor
from actors.distributor import Distributor
from actors.distributor import _state as distributor_state
from actors.monitor._actor import Monitor
from actors.security import Security
from actors.security import _actor as security_actor
from actors.validator._actor import Validator
from store import SqliteEventLog, _once

from .history import history, publish_history
from .support import running_writer, wait_until

ACTORS: list[type[Actor]] = [Security, Validator, Distributor, Assessor, Monitor]


def settings_for(tmp_path: Path, **extra: str) -> Settings:
    return load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_SNAPSHOT_EVERY_EVENTS": "100",
                          **extra}, dotenv=None)


async def stream_created(connection: bus.Bus) -> str:
    created = (await connection.js.stream_info(connection.stream.name)).created
    assert created is not None
    return created.isoformat()


async def on_subjects(connection: bus.Bus, actor: type[Actor], after: int) -> int:
    """How many stored events on the actor's subjects have a seq above `after` (NATS counts)."""
    subjects = [*actor.subjects, *actor.own_subjects]
    info = await connection.js.add_consumer(connection.stream.name, ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1, ack_policy=AckPolicy.NONE,
        filter_subjects=subjects if len(subjects) > 1 else None,
        filter_subject=subjects[0] if len(subjects) == 1 else None, inactive_threshold=5.0))
    return info.num_pending


def state_of(actor: Actor) -> dict[str, Any]:
    return {name: getattr(actor, name) for name in type(actor).state_fields}


def rebuilt(logs: list[dict[str, Any]]) -> dict[str, Any]:
    [line] = [entry for entry in logs if entry["event"] == "rebuilt"]
    return line


async def full_rebuild(kind: type[Actor], settings: Settings, connection: bus.Bus) -> Actor:
    actor = kind(settings)
    await rebuild(actor, connection)
    return actor


async def restart(kind: type[Actor], settings: Settings, connection: bus.Bus) -> tuple[Actor, dict[str, Any],
                                                                                         list[dict[str, Any]]]:
    actor = kind(settings)
    with capture_logs() as logs:
        await rebuild(actor, connection, Snapshots(actor, connection))
    return actor, rebuilt(logs), logs


def submission(workflow_id: str) -> events.WorkflowSubmitted:
    tasks = [events.TaskSpec(id="a", type="noop"), events.TaskSpec(id="b", type="noop", dependencies=["a"]),
             events.TaskSpec(id="c", type="noop", dependencies=["a"])]
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=tasks)


async def test_crashed_actors_restart_from_their_snapshots_and_fold_only_the_tail(
        nats_bus: bus.Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path, YMERA_SNAPSHOT_EVERY_EVENTS="20")
    names = ("security", "validator", "distributor", "executor", "assessor", "monitor")
    ready = asyncio.Event()
    engine = asyncio.create_task(run_all(settings, nats_bus, asyncio.Event(), ready, names=names))
    await asyncio.wait_for(ready.wait(), 30)
    await nats_bus.publish_many([submission(f"wf-{i}") for i in range(40)])
    ended = await nats_bus.js.add_consumer(nats_bus.stream.name, ConsumerConfig(
        durable_name="ended", filter_subject="ymera.wf.*.completed", ack_policy=AckPolicy.NONE))
    for _ in range(3600):  # up to 3 minutes on a loaded machine
        if (await nats_bus.js.consumer_info(nats_bus.stream.name, ended.name)).num_pending == 40:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the 40 workflows did not complete")
    # Crash every actor at once (no clean stop, so no final snapshot); more work arrives while down.
    engine.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await engine
    await nats_bus.publish_many([submission(f"late-{i}") for i in range(5)])

    for kind in ACTORS:
        restarted, line, _ = await restart(kind, settings, nats_bus)
        snapshot_at = line["snapshot_seq"]
        assert snapshot_at > 0, kind.name
        assert line["events"] == await on_subjects(nats_bus, kind, snapshot_at), kind.name
        assert line["events"] < await on_subjects(nats_bus, kind, 0), kind.name
        # The short tail was read unfiltered and filtered here; the full fold, with the
        # server's subject filters: both must fold the same events.
        with monkeypatch.context() as patch:
            patch.setattr(runtime, "UNFILTERED_TAIL", 0)
            full = await full_rebuild(kind, settings_for(tmp_path, YMERA_SNAPSHOTS="false"), nats_bus)
        assert state_of(restarted) == state_of(full), kind.name


async def test_a_clean_stop_leaves_a_snapshot_at_the_last_seq_folded(nats_bus: bus.Bus, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, YMERA_SNAPSHOT_EVERY_EVENTS="1000000")
    last = await publish_history(nats_bus.js, history(400))
    actor, stop, ready = Security(settings), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_actor(actor, nats_bus, stop, ready))
    await asyncio.wait_for(ready.wait(), 30)
    stop.set()
    await task

    restarted, line, _ = await restart(Security, settings, nats_bus)

    assert line["snapshot_seq"] == last
    assert line["events"] == 0
    assert state_of(restarted) == state_of(await full_rebuild(Security, settings, nats_bus))


async def test_monitor_windows_keep_their_bounds_through_a_snapshot(nats_bus: bus.Bus, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    last = await publish_history(nats_bus.js, history(3000))
    first = Monitor(settings)
    await rebuild(first, nats_bus)
    await nats_bus.snapshots.save("monitor", encode_snapshot(first, last, await stream_created(nats_bus)))

    restarted, line, _ = await restart(Monitor, settings, nats_bus)

    assert line["snapshot_seq"] == last
    state = restarted.state  # type: ignore[attr-defined]
    assert (state.latencies.maxlen, state.ends.maxlen, state.recent_quality.maxlen, state.alerts.maxlen) == (
        500, 50, 50, 20)
    assert state == first.state  # type: ignore[attr-defined]


async def ignored(kind: type[Actor], settings: Settings, connection: bus.Bus) -> str:
    """Restart `kind`; assert it ignored its snapshot and folded everything; the reason it gave."""
    everything = await on_subjects(connection, kind, 0)
    _, line, logs = await restart(kind, settings, connection)
    assert (line["snapshot_seq"], line["events"]) == (0, everything)
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert (warning["event"], warning["actor"]) == ("snapshot ignored; folding from the start", kind.name)
    return str(warning["reason"])


class _Forgetful:
    """A replay whose consumer the server forgets after the first batch, as a restarted
    nats-server forgets an in-memory consumer."""

    def __init__(self, batches: bus.PullBatches, connection: bus.Bus) -> None:
        self.batches, self.connection, self.calls = batches, connection, 0
        self.durable = batches.durable

    async def next(self, limit: int | None = None) -> list[bus.Delivery]:
        self.calls += 1
        if self.calls == 2:
            await self.connection.js.delete_consumer(self.connection.stream.name, self.durable)
        return await self.batches.next(limit)


async def test_a_rebuild_whose_replay_consumer_vanishes_fails_rather_than_stopping_short(
        nats_bus: bus.Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chaos test caught an assessor taking 60 of ~2,600 events for its whole history
    after a server restart, then snapshotting that. The rebuild fails instead, so the actor
    crashes and rebuilds again."""
    await publish_history(nats_bus.js, history(5_000))
    replay = nats_bus.replay

    @contextlib.asynccontextmanager
    async def forgetful(name: str, start_seq: int, subjects: Any = None, batch: int = 2000) -> Any:
        async with replay(name, start_seq, subjects, batch=100) as batches:
            yield _Forgetful(batches, nats_bus)

    monkeypatch.setattr(nats_bus, "replay", forgetful)
    actor = Assessor(settings_for(tmp_path))
    folded: list[events.Event] = []
    actor.apply = folded.append  # type: ignore[method-assign]
    with pytest.raises(bus.BusError, match=r"rebuilding assessor: the replay consumer is gone after \d+ events "
                                           r"\(nats-server restarted\?\), before seq \d+ was read"):
        await rebuild(actor, nats_bus)
    assert 0 < len(folded) < await on_subjects(nats_bus, Assessor, 0)


async def test_a_corrupt_snapshot_is_ignored_with_a_warning(nats_bus: bus.Bus, tmp_path: Path) -> None:
    await publish_history(nats_bus.js, history(200))
    await nats_bus.snapshots.save("security", b"\x93 not a snapshot")

    reason = await ignored(Security, settings_for(tmp_path), nats_bus)

    assert reason == "not a snapshot: Expected `object`, got `array`"


async def test_a_snapshot_of_an_older_state_version_is_ignored(nats_bus: bus.Bus, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    last = await publish_history(nats_bus.js, history(200))
    old = Distributor(settings)
    await rebuild(old, nats_bus)
    await nats_bus.snapshots.save("distributor", encode_snapshot(old, last, await stream_created(nats_bus),
                                                                 version=0))

    reason = await ignored(Distributor, settings, nats_bus)

    assert reason == f"state version 0, this build's distributor is version {Distributor.state_version}"


async def test_a_snapshot_of_a_stream_since_deleted_is_ignored(nats_bus: bus.Bus, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    last = await publish_history(nats_bus.js, history(200))
    before = await stream_created(nats_bus)
    old = Validator(settings)
    await rebuild(old, nats_bus)
    await nats_bus.snapshots.save("validator", encode_snapshot(old, last, before))
    await nats_bus.js.delete_stream(nats_bus.stream.name)
    await bus.ensure_stream(nats_bus.js, nats_bus.stream)
    await publish_history(nats_bus.js, history(100, prefix="new"))

    reason = await ignored(Validator, settings, nats_bus)

    assert reason == (f"it belongs to a stream created {before}, this one was created "
                      f"{await stream_created(nats_bus)}")


async def test_a_snapshot_write_that_dies_halfway_leaves_the_previous_one(nats_bus: bus.Bus,
                                                                          tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    last = await publish_history(nats_bus.js, history(200))
    actor = Assessor(settings)
    await rebuild(actor, nats_bus)
    await nats_bus.snapshots.save("assessor", encode_snapshot(actor, last, await stream_created(nats_bus)))
    # What a writer killed mid-put leaves: chunks under a fresh id, no meta pointing at them.
    await nats_bus.js.publish(f"$O.{bus.SNAPSHOT_BUCKET}.C.half-written", b"\x00" * 1000)

    restarted, line, logs = await restart(Assessor, settings, nats_bus)

    assert (line["snapshot_seq"], line["events"]) == (last, 0)
    assert not [entry for entry in logs if entry["log_level"] == "warning"]
    assert state_of(restarted) == state_of(actor)


def test_every_actor_state_is_bounded_by_its_active_runs_not_by_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What an actor remembers of ended runs (their ids, so late copies change nothing) is
    # bounded by a constant: small here, so a short history passes it many times over. The
    # workflows are a minute apart: security's rate window (an hour) holds the same in both.
    monkeypatch.setattr(_once, "LOOSE_KEPT", 200)
    monkeypatch.setattr(distributor_state, "ENDED_KEPT", 20)
    monkeypatch.setattr(security_actor, "DECIDED_KEPT", 20)
    settings = settings_for(tmp_path)
    start = events.now() - timedelta(days=1)

    def snapshot_bytes(kind: type[Actor], n_events: int) -> int:
        actor = kind(settings)
        for event in history(n_events, prefix="b", start=start, step=timedelta(minutes=1)):
            actor.apply(event)
        return len(encode_snapshot(actor, n_events, "created"))

    for kind in ACTORS:
        short, long = snapshot_bytes(kind, 2_000), snapshot_bytes(kind, 8_000)
        assert long <= short * 1.1, f"{kind.name}: {short} bytes after 2,000 events, {long} after 8,000"


def test_an_actor_keeping_state_outside_its_declared_fields_is_refused(tmp_path: Path) -> None:
    actor = Security(settings_for(tmp_path))
    actor.strays = {}  # type: ignore[attr-defined]

    with pytest.raises(TypeError) as caught:
        check_state_fields(actor)

    assert str(caught.value) == ("actor security keeps strays outside its state_fields: declare them there "
                                 "(and bump state_version), or snapshots would lose them")


# ---- retention ------------------------------------------------------------------------------


async def test_retention_settings_set_the_stream_limits_when_the_store_writer_starts(
        nats_bus: bus.Bus, tmp_path: Path) -> None:
    from actors import run_named

    settings = settings_for(tmp_path, YMERA_STREAM_MAX_AGE_SECONDS="86400", YMERA_STREAM_MAX_BYTES="50000000")
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_named("store", settings, nats_bus, stop, ready))
    await asyncio.wait_for(ready.wait(), 30)
    stop.set()
    await task
    config = (await nats_bus.js.stream_info(nats_bus.stream.name)).config
    assert (config.max_age, config.max_bytes) == (86400.0, 50_000_000)

    # Unset leaves the limits as they are; 0 removes them.
    unset = settings_for(tmp_path)
    assert not await bus.set_retention(nats_bus.js, nats_bus.stream.name, max_age=unset.stream_max_age_seconds,
                                       max_bytes=unset.stream_max_bytes)
    assert await bus.set_retention(nats_bus.js, nats_bus.stream.name, max_age=0, max_bytes=0)
    config = (await nats_bus.js.stream_info(nats_bus.stream.name)).config
    assert (config.max_age, config.max_bytes) == (0.0, -1)


def test_retention_settings_refuse_bad_values(tmp_path: Path) -> None:
    from actors import SettingsError

    with pytest.raises(SettingsError) as caught:
        settings_for(tmp_path, YMERA_STREAM_MAX_BYTES="-1")
    assert str(caught.value) == "setting YMERA_STREAM_MAX_BYTES='-1' is not an integer >= 0"
    with pytest.raises(SettingsError) as caught:
        settings_for(tmp_path, YMERA_STREAM_MAX_AGE_SECONDS="a week")
    assert str(caught.value) == "setting YMERA_STREAM_MAX_AGE_SECONDS='a week' is not a number"


async def test_events_the_stream_dropped_are_folded_from_the_log(nats_bus: bus.Bus, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    last = await publish_history(nats_bus.js, history(600))
    full = await full_rebuild(Distributor, settings, nats_bus)
    async with SqliteEventLog(settings.log_path) as log, running_writer(nats_bus, log):
        await wait_until(lambda: log.head_seq == last, what="the log to hold the history")
    archived = await on_subjects(nats_bus, Distributor, 0) - await on_subjects(nats_bus, Distributor, 299)
    await nats_bus.js.purge_stream(nats_bus.stream.name, seq=300)  # as retention would: seqs 1..299 gone

    restarted, line, _ = await restart(Distributor, settings, nats_bus)

    assert (line["snapshot_seq"], line["from_log"]) == (0, archived)
    assert state_of(restarted) == state_of(full)


async def test_an_actor_refuses_to_start_when_dropped_events_are_nowhere(nats_bus: bus.Bus,
                                                                        tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    await publish_history(nats_bus.js, history(600))
    await nats_bus.js.purge_stream(nats_bus.stream.name, seq=300)

    with pytest.raises(HistoryDropped) as caught:
        await rebuild(Monitor(settings), nats_bus, None)

    assert str(caught.value) == (
        "actor monitor cannot start: it needs the stream from seq 1, but the stream now starts at seq 300 "
        "(retention dropped seqs 1..299) and there is no log at "
        f"{settings.log_path}; run the actor where the store writer's log is (same YMERA_DATA_DIR), or "
        "lengthen YMERA_STREAM_MAX_AGE_SECONDS / YMERA_STREAM_MAX_BYTES")


def test_subject_matching_follows_nats_wildcards() -> None:
    assert matches("ymera.wf.a.submitted", "ymera.wf.*.submitted")
    assert not matches("ymera.wf.a.admitted", "ymera.wf.*.submitted")
    assert matches("ymera.task.a.t.started", "ymera.>")
    assert not matches("ymera", "ymera.>")
    assert not matches("ymera.wf.a.submitted.x", "ymera.wf.*.submitted")


async def test_a_rebuild_counts_what_it_passed_over_unread_and_folds_the_same_state(
        nats_bus: bus.Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = submission("wf-passed")  # a, then b and c on a's output
    quality = events.Quality(task_type="noop", accuracy=1.0, completeness=1.0, consistency=1.0, efficiency=1.0,
                             maintainability=1.0, overall=1.0)
    common = {"ts": events.now(), "workflow_id": sub.workflow_id, "run_id": sub.id, "actor": "executor",
              "attempt": 1, "quality": quality}
    await nats_bus.publish_many([sub, *(events.TaskSucceeded(id=events.new_id(), task_id=t, **common)  # type: ignore[arg-type]
                                        for t in ("a", "b"))])
    for tail in (runtime.UNFILTERED_TAIL, 0):  # read unfiltered and filtered here, then with the server's filters
        monkeypatch.setattr(runtime, "UNFILTERED_TAIL", tail)
        assessor, line, _ = await restart(Assessor, settings_for(tmp_path, YMERA_SNAPSHOTS="false"), nats_bus)
        assert line["events"] == await on_subjects(nats_bus, Assessor, 0) == 3
        # a is kept (b and c are compared with it); b, passed over, is nowhere.
        assert set(assessor.outputs[sub.id]) == {"a"}
        assert assessor.to_assess == {}

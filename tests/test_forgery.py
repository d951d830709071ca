"""Forgeries, as a hostile client on the same NATS makes them: each is rejected with a reason
(a `MessageRejected` in the log, naming what is wrong), and changes nothing.

The engine runs in this process, every actor signing what it emits (bus/_seal.py); the test's
own connection (`nats_bus`) signs nothing: it is the attacker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

import bus
import events
import guard
import store
from actors import Settings, load_settings
from ymera import WorkflowClient

from .conftest import ymera, ymera_env
from .engine import in_process


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A task announces it started (TaskStarted) once it outlives its first heartbeat.
    return load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_HEARTBEAT_SECONDS": "0.3"}, dotenv=None)


def napping(workflow_id: str, seconds: float = 1.5) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=[
        events.TaskSpec(id="nap", type="sleep", parameters={"seconds": seconds})])


async def started(connection: bus.Bus, workflow_id: str) -> events.TaskStarted:
    follower = await connection.follow(1, f"ymera.task.{workflow_id}.nap.started")
    try:
        msg = await follower.next(30)
    finally:
        await follower.stop()
    assert msg is not None, "the nap did not start"
    event = connection.decode_msg(msg)
    assert isinstance(event, events.TaskStarted)
    return event


async def rejections(settings: Settings, count: int) -> list[events.MessageRejected]:
    """The store writer's rejections, once it has logged `count` of them."""
    found: list[events.MessageRejected] = []
    for _ in range(300):
        found.clear()
        if settings.log_path.exists():
            async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
                async for chunk in log.scan("data", types=("MessageRejected",)):
                    found.extend(e for (data,) in chunk
                                 if isinstance(e := events.decode(data), events.MessageRejected))
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} rejections were not in the log within 30s: {found}")


async def test_a_forged_result_for_a_task_still_running_is_rejected_and_the_real_one_taken(
        nats_bus: bus.Bus, settings: Settings) -> None:
    async with in_process(settings, nats_bus):
        client = WorkflowClient(nats_bus)
        submission = napping("wf-forged-result")
        seq = await client.submit(submission)
        real_start = await started(nats_bus, submission.workflow_id)
        forged = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id=submission.workflow_id,
                                      run_id=submission.id, task_id="nap", attempt=real_start.attempt,
                                      output="made up", actor="executor")
        await nats_bus.publish(forged)
        end, _ = await client.wait(submission.workflow_id, seq, timeout=60, run_id=submission.id)
        [rejected] = await rejections(settings, 1)
    assert isinstance(end, events.WorkflowCompleted), end
    assert [(r.task_id, r.status) for r in end.results] == [("nap", "succeeded")]
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        results = [events.decode(data) async for chunk in log.scan("data", types=("TaskSucceeded",))
                   for (data,) in chunk]
    assert [(e.task_id, e.output) for e in results if isinstance(e, events.TaskSucceeded)] == [
        ("nap", {"slept": 1.5})]
    assert end.ts > results[0].ts  # the run ended on the real result, after the nap
    assert (rejected.subject, rejected.reason, rejected.kind) == (
        events.subject_of(forged), "TaskSucceeded is the executor's to emit, and this one is not signed", "untrusted")


async def test_a_forged_completion_does_not_make_status_say_completed(
        nats_bus: bus.Bus, settings: Settings, tmp_path: Path) -> None:
    async with in_process(settings, nats_bus):
        client = WorkflowClient(nats_bus)
        submission = napping("wf-forged-end", seconds=10)  # outlives a slow `ymera status` start
        await client.submit(submission)
        await started(nats_bus, submission.workflow_id)
        await nats_bus.publish(events.WorkflowCompleted(id=events.new_id(), ts=events.now(),
                                                        workflow_id=submission.workflow_id, run_id=submission.id,
                                                        actor="distributor"))
        await rejections(settings, 1)
        env = ymera_env(settings.data_dir, nats_bus.url)
        status = await asyncio.to_thread(ymera, "status", submission.workflow_id, env=env)
    assert status.returncode == 0, status.stderr
    assert "completed" not in status.stdout.splitlines()[0], status.stdout
    assert "running" in status.stdout.splitlines()[0], status.stdout


async def test_a_forged_ready_task_of_a_workflow_never_submitted_is_not_run(
        nats_bus: bus.Bus, settings: Settings) -> None:
    spec = events.TaskSpec(id="evil", type="sleep", parameters={"seconds": 0.1})
    forged = events.TaskReady(id=events.new_id(), ts=events.now(), workflow_id="wf-never", run_id="r-never",
                              task_id="evil", attempt=1, spec=spec, actor="distributor")
    async with in_process(settings, nats_bus):
        await nats_bus.publish(forged)
        [rejected] = await rejections(settings, 1)
        # A real run after it: once it ends, the executor has read past the forgery.
        client = WorkflowClient(nats_bus)
        submission = napping("wf-after", seconds=0.1)
        end, _ = await client.wait(submission.workflow_id, await client.submit(submission), timeout=60,
                                   run_id=submission.id)
        ran = await nats_bus.last_stored("ymera.task.wf-never.>")
    assert isinstance(end, events.WorkflowCompleted), end
    assert rejected.reason == "TaskReady is the distributor's to emit, and this one is not signed"
    assert ran is not None
    assert ran[0] == rejected.stream_seq  # nothing was published for it but the forgery


async def test_an_event_signed_with_another_actors_key_is_rejected_naming_the_signer(
        nats_bus: bus.Bus, settings: Settings) -> None:
    async with in_process(settings, nats_bus):
        executor_key = guard.Identity.load_or_create(settings.keys_dir, "executor")  # a compromised executor
        impostor = await bus.connect(nats_bus.url, signer=executor_key)
        outsider = await bus.connect(nats_bus.url, signer=guard.Identity.generate("distributor"))
        try:
            spec = events.TaskSpec(id="t", type="noop")
            await impostor.publish(events.TaskReady(id=events.new_id(), ts=events.now(), workflow_id="wf-x",
                                                    run_id="r", task_id="t", attempt=1, spec=spec))
            await outsider.publish(events.WorkflowCompleted(id=events.new_id(), ts=events.now(),
                                                            workflow_id="wf-y", run_id="r"))
            # A signed batch whose message was changed on the way: the seal no longer fits it.
            genuine = events.TaskHeartbeat(id=events.new_id(), ts=events.now(), workflow_id="wf-z", run_id="r",
                                           task_id="t", attempt=1, executor="e")
            data = events.encode(genuine)
            [sealed] = bus.seal(executor_key, [(events.subject_of(genuine), data)])
            await nats_bus.nc.publish(events.subject_of(genuine), data.replace(b'"attempt":1', b'"attempt":2'),
                                      headers={bus.SEAL_HEADER: sealed})
            found = await rejections(settings, 3)
        finally:
            await impostor.close()
            await outsider.close()
    assert sorted(r.reason for r in found) == sorted([
        "TaskReady is the distributor's to emit, and this one is signed by the executor",
        f"WorkflowCompleted is signed by key {outsider.signer.key_id!r}, which is no actor's key this deployment "  # type: ignore[union-attr]
        "knows",
        "TaskHeartbeat's signature does not verify: the message was altered, or the signature forged"])


async def test_a_seal_copied_onto_a_message_not_in_its_batch_does_not_verify() -> None:
    signer = guard.Identity.generate("executor")
    messages = [(f"ymera.task.wf.t{n}.started", f"body {n}".encode()) for n in range(5)]
    seals = bus.seal(signer, messages)

    class Ring:
        def actor_of(self, key: str) -> str | None:
            return "executor" if key == signer.key_id else None

        def verify(self, key: str, data: bytes, signature: str) -> bool:
            return guard.verify(signer.public_key, data, signature)

    check = bus.SealCheck(Ring())
    for (subject, data), sealed in zip(messages, seals, strict=True):
        assert check.check("TaskStarted", subject, data, sealed) == "executor"
    with pytest.raises(bus.UntrustedEvent) as swapped:  # a message not in the batch, with a seal of it
        check.check("TaskStarted", messages[1][0], b"body 1, altered", seals[1])
    assert swapped.value.reason == ("TaskStarted's signature does not verify: the message was altered, or the "
                                    "signature forged")
    for bad in ("", ".x", f".{signer.key_id}.5.9.sig.", f".{signer.key_id}.5.0.sig.@@", f".{signer.key_id}.a.b.c.d",
                f".{signer.key_id}.1.0.sig", f"0f.{signer.key_id}.5.0.sig."):
        with pytest.raises(bus.UntrustedEvent) as malformed:  # (a message proven already needs no proof)
            bus.SealCheck(Ring()).check("TaskStarted", messages[0][0], messages[0][1], bad or None)
        assert malformed.value.reason in ("TaskStarted has a malformed signature header",
                                          "TaskStarted is the executor's to emit, and this one is not signed",
                                          "TaskStarted is signed by key 'x', which is no actor's key this "
                                          "deployment knows")
    assert check.check("WorkflowSubmitted", "ymera.wf.wf.submitted", b"{}", None) is None  # a client's: unsigned


def test_the_seal_of_a_single_event_batch_has_an_empty_proof() -> None:
    signer = guard.Identity.generate("store")
    [sealed] = bus.seal(signer, [("ymera.sec._.checkpoint", b"{}")])
    mac, key, n, i, signature, proof = sealed.split(".")
    assert (mac, key, n, i, proof) == ("", signer.key_id, "1", "0", "")  # no MAC key: no MAC
    assert msgspec.json.decode(b'"' + signature.encode() + b'"')  # plain base64 text, no dots


def test_an_actor_checks_a_batch_by_its_mac_and_a_reader_without_the_secret_by_its_signature() -> None:
    signer = guard.Identity.generate("distributor")
    macs = guard.mac_keys(b"the deployment's secret")
    messages = [("ymera.task.wf.t.ready", b"one"), ("ymera.task.wf.u.ready", b"two")]
    seals = bus.seal(signer, messages, macs("distributor"))
    checked: list[str] = []

    class Ring:
        def actor_of(self, key: str) -> str | None:
            return "distributor" if key == signer.key_id else None

        def verify(self, key: str, data: bytes, signature: str) -> bool:
            checked.append(key)
            return guard.verify(signer.public_key, data, signature)

    actor = bus.SealCheck(Ring(), macs)
    assert [actor.check("TaskReady", s, d, sealed) for (s, d), sealed in zip(messages, seals, strict=True)] == [
        "distributor", "distributor"]
    assert checked == []  # the MAC sufficed
    client = bus.SealCheck(Ring())
    assert client.check("TaskReady", *messages[0], seals[0]) == "distributor"
    assert checked == [signer.key_id]
    # Another actor holding the secret makes a MAC under the distributor's key, and signs with its own key: an
    # actor's check takes the MAC, the signature check of a client or the audit does not.
    executor = guard.Identity.generate("executor")
    [forged] = bus.seal(executor, [messages[0]], macs("distributor"))
    forged = forged.replace(executor.key_id, signer.key_id, 1)
    assert bus.SealCheck(Ring(), macs).check("TaskReady", "ymera.task.wf.t.ready", b"one", forged) == "distributor"
    with pytest.raises(bus.UntrustedEvent):
        bus.SealCheck(Ring()).check("TaskReady", "ymera.task.wf.t.ready", b"one", forged)
    # Without the secret, no MAC fits: the signature decides, and a made-up one fails.
    [outsider] = bus.seal(executor, [messages[0]], macs("executor"))
    outsider = outsider.replace(executor.key_id, signer.key_id, 1)
    with pytest.raises(bus.UntrustedEvent):
        bus.SealCheck(Ring(), guard.mac_keys(b"the deployment's secret")).check(
            "TaskReady", "ymera.task.wf.t.ready", b"one", outsider)

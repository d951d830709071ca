"""Who may cancel a run: where a client's principal is its key (YMERA_NATS_AUTH with signing),
the principal that submitted the run, or an admin (YMERA_ADMINS); anyone else's cancel is
refused with a `CancelRefused` saying why, the run goes on, and the client that asked gets the
reason as an error (`CancelDenied`, or one line from `ymera cancel`).

The engine runs in this process on a server that enforces who publishes what; alice and bob
are two clients with keys of their own (tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

import actors
import bus
import events
import guard
import store
from actors import Settings, load_settings
from actors.distributor import Distributor
from store import security_report
from ymera import CancelDenied, WorkflowClient
from ymera._report import security_text

from .conftest import Secured, as_client, ymera, ymera_env
from .engine import in_process


def napping(workflow_id: str, seconds: float = 3.0) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=[
        events.TaskSpec(id="nap", type="sleep", parameters={"seconds": seconds})])


def refusal(run: events.WorkflowSubmitted, owner: str, asker: str) -> str:
    return (f"cancel of run {run.id} of workflow {run.workflow_id} refused: it was submitted by {owner!r}, and "
            f"{asker!r} may cancel only its own runs (YMERA_ADMINS names the principals that may cancel any)")


@asynccontextmanager
async def client_of(secured: Secured, principal: str) -> AsyncIterator[bus.Bus]:
    connection, _ = await bus.open_local(secured.settings, principal,
                                         actors.client_access(as_client(secured.settings, principal)))
    try:
        yield connection
    finally:
        await connection.close()


async def logged(settings: Settings, workflow_id: str, until: type[events.Event]) -> list[events.Event]:
    """The workflow's events as the store writer logged them, once one of type `until` is there."""
    for _ in range(300):
        if settings.log_path.exists():
            async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
                found = [events.decode(data) async for chunk in log.scan("data", workflow_id=workflow_id)
                         for (data,) in chunk]
            if any(isinstance(e, until) for e in found):
                return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {until.__name__} of {workflow_id} in the log within 30s")


async def test_bob_cannot_cancel_alices_run_and_it_goes_on(secured: Secured, alice: bus.Bus,
                                                           as_distributor: bus.Bus) -> None:
    client = WorkflowClient(alice)
    async with client_of(secured, "bob") as bob, in_process(secured.settings, alice):
        run = napping("wf-alices")
        seq = await client.submit(run)
        with pytest.raises(CancelDenied) as denied:
            await WorkflowClient(bob).cancel("wf-alices", "mine now", run.id)
        assert str(denied.value) == refusal(run, "alice", "bob")
        assert (denied.value.run_id, denied.value.principal, denied.value.submitted_by) == (run.id, "bob", "alice")
        end, _ = await client.wait("wf-alices", seq, timeout=60, run_id=run.id)
        assert isinstance(end, events.WorkflowCompleted)
        seen = await logged(secured.settings, "wf-alices", events.WorkflowCompleted)
    [refused] = [e for e in seen if isinstance(e, events.CancelRefused)]
    [asked] = [e for e in seen if isinstance(e, events.CancelRequested)]
    assert (refused.causation_id, refused.run_id, refused.actor) == (asked.id, run.id, "distributor")
    assert (asked.principal, refused.principal, refused.submitted_by) == ("bob", "bob", "alice")
    assert refused.reason == refusal(run, "alice", "bob")
    assert not any(isinstance(e, events.WorkflowCancelled) for e in seen)
    async with store.SqliteEventLog(secured.settings.log_path, readonly=True) as log:
        report = await security_report(log, 1)
    assert report["cancels_refused"] == {"total": 1, "by_principal": {"bob": 1}}
    assert "cancels            1 refused (asked by bob 1)" in security_text(report).splitlines()
    # Folded from the log, as a rebuild reads it: up to the refusal, the same refusal is decided
    # again (same id: a copy the stream and the log drop); through it, nothing more.
    mine = [e for e in seen if isinstance(e, (*Distributor.reads, *Distributor.own))]
    cut = mine.index(refused)
    keyed = msgspec.structs.replace(secured.settings, id_key=guard.id_key(secured.settings.keys_dir))
    redecided = await decided(keyed, as_distributor, mine[:cut], [])
    assert [e.id for e in redecided if isinstance(e, events.CancelRefused)] == [refused.id]
    through = await decided(keyed, as_distributor, mine[:cut + 1], [])
    assert not any(isinstance(e, (events.CancelRefused, events.WorkflowCancelled)) for e in through)


async def test_alice_cancels_her_own_run(secured: Secured, alice: bus.Bus) -> None:
    client = WorkflowClient(alice)
    async with in_process(secured.settings, alice):
        run = napping("wf-hers", seconds=30)
        await client.submit(run)
        end = await client.cancel("wf-hers", "changed my mind", run.id)
    assert isinstance(end, events.WorkflowCancelled)
    assert (end.run_id, end.reason) == (run.id, "changed my mind")


async def test_an_admin_cancels_anyones_run(secured: Secured, alice: bus.Bus) -> None:
    settings = msgspec.structs.replace(secured.settings, admins=("bob",))
    async with client_of(secured, "bob") as bob, in_process(settings, alice):
        run = napping("wf-admin", seconds=30)
        await WorkflowClient(alice).submit(run)
        end = await WorkflowClient(bob).cancel("wf-admin", "on call says stop", run.id)
    assert isinstance(end, events.WorkflowCancelled)
    assert end.reason == "on call says stop"


async def test_ymera_cancel_as_another_principal_says_why_it_was_refused(secured: Secured, alice: bus.Bus) -> None:
    env = {**ymera_env(secured.settings.data_dir, secured.server.url), "YMERA_NATS_AUTH": "true",
           "YMERA_CLIENT_KEY": str(secured.settings.keys_dir / "client.bob.key")}
    client = WorkflowClient(alice)
    async with in_process(secured.settings, alice):
        run = napping("wf-cli", seconds=30)
        seq = await client.submit(run)
        cancel = await asyncio.to_thread(ymera, "cancel", "wf-cli", "--reason", "mine now", env=env)
        assert (cancel.returncode, cancel.stdout) == (1, "")
        assert cancel.stderr == f"ymera: {refusal(run, 'alice', 'bob')}\n"
        mine = await client.cancel("wf-cli", "done waiting", run.id)  # still running: hers to end
        assert isinstance(mine, events.WorkflowCancelled)
        end, _ = await client.wait("wf-cli", seq, timeout=60, run_id=run.id)
    assert end == mine


# ---- the decision, folded: the same live, after a crash, and from the log --------------------------------------


def at(second: int) -> datetime:
    return datetime(2026, 12, 3, 12, 0, second, tzinfo=UTC)


def asking(run: events.WorkflowSubmitted, principal: str | None, second: int = 2) -> events.CancelRequested:
    return events.CancelRequested(id=events.new_id(), ts=at(second), workflow_id=run.workflow_id, run_id=run.id,
                                  reason="stop", principal=principal)


def submitted(principal: str) -> tuple[events.WorkflowSubmitted, list[events.Event]]:
    """A run of `principal`'s, and its history up to its admission."""
    run = msgspec.structs.replace(napping("wf-fold"), principal=principal, ts=at(0))
    admitted = events.WorkflowAdmitted(id=events.new_id(), ts=at(1), workflow_id=run.workflow_id, run_id=run.id,
                                       principal=principal, actor="security")
    return run, [run, admitted]


@pytest.fixture
async def as_distributor(secured: Secured) -> AsyncIterator[bus.Bus]:
    """The distributor's own connection: it rejects a client's event not signed by the principal it names."""
    connection, _ = await bus.open_local(secured.settings, "distributor",
                                         actors.actor_access(secured.settings, "distributor"))
    try:
        yield connection
    finally:
        await connection.close()


async def decided(settings: Settings, connection: bus.Bus | None, folded: list[events.Event],
                  new: list[events.Event]) -> list[events.Event]:
    """What a distributor on `connection` that folded `folded` (as a rebuild does) decides when `new` arrive."""
    distributor = Distributor(settings)
    distributor.bus = connection
    for event in folded:
        distributor.apply(event)
    return [*await distributor.reconcile(at(3)), *await distributor.handle(new)]


async def test_a_rebuild_decides_a_cancel_as_the_live_distributor_did(
        secured: Secured, as_distributor: bus.Bus) -> None:
    settings, on = secured.settings, as_distributor
    run, history = submitted("alice")
    bobs = asking(run, "bob")
    live = await decided(settings, on, [], [*history, bobs])
    [refused] = [e for e in live if isinstance(e, events.CancelRefused)]
    assert refused.reason == refusal(run, "alice", "bob")
    assert not any(isinstance(e, events.WorkflowCancelled) for e in live)
    # Crashed before publishing it: the rebuild decides the same refusal, with the same id (a copy is dropped).
    again = await decided(settings, on, [*history, bobs], [])
    assert [e for e in again if isinstance(e, events.CancelRefused)] == \
        [msgspec.structs.replace(refused, ts=at(3), causation_id=refused.causation_id)]
    # Published: folded from the stream, it is decided, and stays so even where bob has since become an admin.
    promoted = msgspec.structs.replace(settings, admins=("bob",))
    after = await decided(promoted, on, [*history, bobs, refused], [])
    assert not any(isinstance(e, (events.CancelRefused, events.WorkflowCancelled)) for e in after)
    # The admin's cancel after it is honoured; alice's own always is.
    admins = await decided(promoted, on, [*history, bobs, refused], [asking(run, "bob", 4)])
    assert [type(e) for e in admins if isinstance(e, (events.CancelRefused, events.WorkflowCancelled))] == \
        [events.WorkflowCancelled]
    hers = await decided(settings, on, [*history, bobs, refused], [asking(run, "alice", 4)])
    assert [type(e) for e in hers if isinstance(e, (events.CancelRefused, events.WorkflowCancelled))] == \
        [events.WorkflowCancelled]


async def test_a_cancel_naming_no_principal_is_refused_where_principals_are_keys(
        secured: Secured, as_distributor: bus.Bus) -> None:
    run, history = submitted("alice")
    out = await decided(secured.settings, as_distributor, [], [*history, asking(run, None)])
    [refused] = [e for e in out if isinstance(e, events.CancelRefused)]
    assert refused.reason == (f"cancel of run {run.id} of workflow wf-fold refused: the cancel names no principal, "
                              "and only its submitter 'alice' or an admin (YMERA_ADMINS) may cancel it")
    assert refused.principal == ""


async def test_with_signing_off_any_cancel_is_honoured(secured: Secured) -> None:
    unsigned = msgspec.structs.replace(secured.settings, sign_events=False)  # a principal is what a client says
    connection, _ = await bus.open_local(unsigned, "distributor", actors.actor_access(unsigned, "distributor"))
    try:
        assert connection.seals is None  # it checks no signature
        run, history = submitted("alice")
        out = await decided(unsigned, connection, [], [*history, asking(run, "bob")])
    finally:
        await connection.close()
    assert [type(e) for e in out if isinstance(e, (events.CancelRefused, events.WorkflowCancelled))] == \
        [events.WorkflowCancelled]


async def test_without_nats_auth_any_cancel_is_honoured(nats_server: bus.EmbeddedServer, tmp_path: Path) -> None:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "NATS_URL": nats_server.url}, dotenv=None)
    assert not settings.nats_auth
    assert settings.sign_events
    connection, _ = await bus.open_local(settings, "distributor", actors.actor_access(settings, "distributor"))
    try:
        assert connection.seals is not None
        assert not connection.seals.clients_sign  # clients sign nothing here
        run, history = submitted("alice")
        out = await decided(settings, connection, [], [*history, asking(run, "bob")])
    finally:
        await connection.close()
    assert [type(e) for e in out if isinstance(e, (events.CancelRefused, events.WorkflowCancelled))] == \
        [events.WorkflowCancelled]

"""Who may connect and publish (bus/_access.py, guard/_users.py): with YMERA_NATS_AUTH the
server authenticates every connection by its key and lets each publish only what it may, and
a client's principal is the key that signed its submission, not a field it chose.

The server here is nats-server with the authorization Ymera makes for its embedded server;
the engine runs in this process, each actor connecting as its own key."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import time
from pathlib import Path

import nats.errors
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import actors
import bus
import events
import guard
from ymera import WorkflowClient

from .conftest import Secured, spawn_ymera, ymera, ymera_env
from .engine import in_process
from .test_forgery import rejections


def submission(workflow_id: str, principal: str = "anonymous") -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, principal=principal,
                                    tasks=[events.TaskSpec(id="say", type="echo", parameters={"text": "hi"})])


async def end_of(client: WorkflowClient, workflow_id: str) -> events.Event:
    async for event in client.events(workflow_id):
        if isinstance(event, events.RUN_ENDS):
            return event
    raise AssertionError("the events stopped")


def test_a_nkey_is_written_as_nats_writes_it() -> None:
    # The user seed and public key of the NATS documentation's nkey example (docs.nats.io, "NKeys").
    seed = "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY"
    raw = base64.b32decode(seed + "=" * (-len(seed) % 8))[2:34]
    identity = guard.Identity("client.docs", Ed25519PrivateKey.from_private_bytes(raw))
    assert identity.nkey == "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"


def test_only_a_nonce_is_signed_for_the_server(tmp_path: Path) -> None:
    identity = guard.Identity.load_or_create(tmp_path, "executor")
    assert base64.b64decode(identity.sign_nonce("dGhpcy1pcy1hLW5vbmNl"))
    with pytest.raises(guard.KeyFileError, match="is not a base64url token; not signing it"):
        identity.sign_nonce("ymera-seal-v1\nforged root")


async def test_a_connection_without_a_key_the_server_knows_is_refused(secured: Secured, tmp_path: Path) -> None:
    with pytest.raises(bus.BusUnavailable, match=r"authorization violation.*it has no credentials"):
        await bus.connect(secured.server.url)
    stranger = guard.Identity.generate("client.mallory")
    with pytest.raises(bus.BusUnavailable, match=r"its key client\.mallory .* is not one the server knows"):
        await bus.connect(secured.server.url, credentials=stranger)


async def test_a_server_that_lets_anyone_in_is_refused_where_permissions_are_counted_on(
        nats_server: bus.EmbeddedServer, tmp_path: Path) -> None:
    me = guard.Identity.load_or_create(tmp_path, "client.local")
    with pytest.raises(bus.BusUnavailable, match=r"lets anyone connect and publish.*YMERA_NATS_AUTH=false"):
        await bus.connect(nats_server.url, credentials=me, require_auth=True)


async def test_a_client_cannot_publish_an_actors_event(secured: Secured, alice: bus.Bus) -> None:
    forged = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf-forged", task_id="t",
                                  attempt=1, actor="executor", output="made up")
    alice.publish_timeout = 1.0
    # nats-py hands the server's error over in lower case.
    with pytest.raises(bus.BusError, match=re.escape('the server refused: permissions violation for publish to '
                                                     '"ymera.task.wf-forged.t.succeeded"')):
        await alice.publish(forged)
    assert (await alice.stream_state()).last_seq == 0  # nothing reached the stream


async def test_an_actor_cannot_publish_another_actors_event(secured: Secured) -> None:
    settings = secured.settings
    executor = guard.Identity.load_or_create(settings.keys_dir, "executor")
    connection = await bus.connect(secured.server.url, credentials=executor, signer=executor, publish_timeout=1.0)
    try:
        ready = events.TaskReady(id=events.new_id(), ts=events.now(), workflow_id="wf-x", task_id="t", attempt=1,
                                 spec=events.TaskSpec(id="t", type="noop"))
        refused = 'permissions violation for publish to "ymera.task.wf-x.t.ready"'
        with pytest.raises(bus.BusError, match=re.escape(refused)):
            await connection.publish(ready)
        assert await connection.last_stored(events.subject_filter(events.TaskReady)) is None
    finally:
        await connection.close()


async def test_a_client_cannot_touch_an_actors_consumer(secured: Secured, alice: bus.Bus) -> None:
    async with in_process(secured.settings, alice):
        assert await alice.consumer_state("executor") is not None
        with pytest.raises(nats.errors.TimeoutError):  # the server never answers a refused request
            await alice.js.delete_consumer(alice.stream.name, "executor")
        assert any('publish to "$js.api.consumer.delete.ymera.executor"' in d for d in alice.denied)
        assert await alice.consumer_state("executor") is not None


async def test_the_principal_is_the_client_key_that_signed(secured: Secured, alice: bus.Bus) -> None:
    client = WorkflowClient(alice)
    async with in_process(secured.settings, alice):
        # The workflow says bob; alice's client submits it as alice, and the run is hers.
        await client.submit(submission("wf-who", principal="bob"))
        end = await end_of(client, "wf-who")
        assert isinstance(end, events.WorkflowCompleted)
        admitted = await alice.last(events.subject_filter(events.WorkflowAdmitted, "wf-who"))
        assert isinstance(admitted, events.WorkflowAdmitted)
        assert admitted.principal == "alice"


async def test_a_submission_naming_another_principal_is_rejected(secured: Secured, alice: bus.Bus) -> None:
    async with in_process(secured.settings, alice):
        await alice.publish(submission("wf-bob", principal="bob"))  # as alice's key, claiming bob
        [rejected] = await rejections(secured.settings, 1)
        assert rejected.kind == "untrusted"
        assert rejected.reason == ("WorkflowSubmitted names principal 'bob' and is signed by client 'alice': a "
                                   "principal is the client key that signs")
        await asyncio.sleep(0.5)
        assert await alice.last(events.subject_filter(events.WorkflowAdmitted, "wf-bob")) is None


async def test_an_unsigned_submission_is_rejected(secured: Secured, alice: bus.Bus) -> None:
    bob = guard.Identity.load_or_create(secured.settings.keys_dir, "client.bob")
    unsigned = await bus.connect(secured.server.url, credentials=bob)  # authenticated, signing nothing
    try:
        async with in_process(secured.settings, alice):
            await unsigned.publish(submission("wf-unsigned", principal="bob"))
            [rejected] = await rejections(secured.settings, 1)
            assert rejected.reason == ("WorkflowSubmitted is not signed: this deployment takes a client's events "
                                       "only signed by its client key, which names its principal")
    finally:
        await unsigned.close()


async def test_renaming_the_principal_does_not_escape_the_rate_limit(secured: Secured, alice: bus.Bus) -> None:
    client = WorkflowClient(alice)
    async with in_process(secured.settings, alice):
        ends = []
        for i, claimed in enumerate(("alice", "carol", "dave")):  # RATE_LIMIT_PER_HOUR is 2
            await client.submit(submission(f"wf-rate-{i}", principal=claimed))
            ends.append(await end_of(client, f"wf-rate-{i}"))
    assert [type(e).__name__ for e in ends] == ["WorkflowCompleted", "WorkflowCompleted", "WorkflowRefused"]
    assert isinstance(ends[2], events.WorkflowRefused)
    assert ends[2].reason == "principal alice is over its rate limit of 2 workflows per hour"


def test_the_authorization_lists_every_actor_and_client(tmp_path: Path) -> None:
    text = guard.authorization(tmp_path)
    for actor in actors.ACTOR_NAMES:
        assert f"# {actor} ({actor})" in text
    assert "# client.local (client)" in text
    assert set(bus.ACTOR_ROLES) == set(actors.ACTOR_NAMES)
    client = bus.permissions(events.CLIENT)
    assert client["publish"]["allow"][:3] == [
        "ymera.wf.*.submitted", "ymera.wf.*.cancel_requested", "ymera.fb.*.*.given"]
    assert "$JS.API.CONSUMER.DELETE.YMERA.executor" in client["publish"]["deny"]


def test_ymera_clients_add_lets_a_new_client_into_the_running_server(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    first = ymera("run", str(Path(__file__).parents[1] / "examples" / "pipeline.yaml"), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    added = ymera("clients", "add", "alice", env=env, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert f"client alice: key {tmp_path / 'data' / 'keys' / 'client.alice.key'} (mode 0600), NATS nkey U" \
        in added.stdout
    listed = ymera("clients", "list", env=env, cwd=tmp_path)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["alice", "local"]
    again = ymera("clients", "add", "alice", env=env, cwd=tmp_path)
    assert again.returncode == 1
    assert "clients add: alice already has a key" in again.stderr
    bad = ymera("clients", "add", "al.ice", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    assert ("clients add: principal 'al.ice' is not valid: 1 to 64 letters, digits, _ or -, starting with a letter "
            "or digit") in bad.stderr
    block = ymera("nats", "authorization", env=env, cwd=tmp_path)
    assert "# client.alice (client)" in block.stdout
    assert "# executor (executor)" in block.stdout


async def test_a_running_embedded_server_takes_a_new_client_on_reload(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys = data / "keys"
    server = bus.EmbeddedServer(data / "nats", announce_in=data, authorization=guard.authorization(keys))
    server.start()
    try:
        carol = guard.Identity.load_or_create(keys, "client.carol")
        with pytest.raises(bus.BusUnavailable, match="authorization violation"):
            await bus.connect(server.url, credentials=carol)
        assert bus.reload_running(data, guard.authorization(keys))
        for _ in range(50):  # the server reloads on SIGHUP, a moment later
            try:
                connection = await bus.connect(server.url, credentials=carol)
                break
            except bus.BusUnavailable:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("carol was not let in after the reload")
        await connection.close()
    finally:
        server.stop()


def test_a_client_key_file_must_be_named_for_its_principal(tmp_path: Path) -> None:
    with pytest.raises(guard.KeyFileError, match=r"a client key file is named client.<principal>.key"):
        guard.client_identity(tmp_path, tmp_path / "alice.key")
    with pytest.raises(guard.KeyFileError, match=r"client.nobody.key: no such file"):
        guard.client_identity(tmp_path, tmp_path / "client.nobody.key")


def test_actors_in_processes_of_their_own_connect_as_themselves_to_the_embedded_server(tmp_path: Path) -> None:
    """`ymera up --processes` on the embedded defaults: the server authenticates, and each
    actor's process, given the server's address, connects with its own key (it used to connect
    with none, be refused, and retry for ever)."""
    data = tmp_path / "data"
    env = ymera_env(data)
    assert "NATS_URL" not in env
    assert "YMERA_NATS_AUTH" not in env
    up = spawn_ymera("up", "--processes", "--executors", "1", env=env, output=tmp_path / "up.log")
    try:
        deadline = time.monotonic() + 60
        while bus.running_server(data) is None:
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "the embedded server did not start"
            time.sleep(0.1)
        run = ymera("run", str(Path(__file__).parent.parent / "examples" / "pipeline.yaml"), env=env, timeout=120)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    log = (tmp_path / "up.log").read_text()
    assert run.returncode == 0, run.stdout + run.stderr + log
    assert "completed" in run.stdout
    assert "authorization violation" not in log

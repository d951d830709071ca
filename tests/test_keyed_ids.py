"""Derived event ids keyed by the deployment's secret (`<keys dir>/ids.key`): the same for
every actor of the deployment, and no one without the key can work one out and take it first."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

import bus
import events
import guard
from actors import load_settings
from ymera import WorkflowClient

from .engine import all_events, in_process


def test_a_keyed_id_is_stable_under_its_key_and_unlike_the_unkeyed_one() -> None:
    key, other = os.urandom(32), os.urandom(32)
    keyed = events.derive_id("run-1", "TaskSucceeded", "t", 1, key=key)
    assert keyed == events.derive_id("run-1", "TaskSucceeded", "t", 1, key=key)
    assert keyed != events.derive_id("run-1", "TaskSucceeded", "t", 1)
    assert keyed != events.derive_id("run-1", "TaskSucceeded", "t", 1, key=other)
    assert keyed != events.derive_id("run-1", "TaskSucceeded", "t", 2, key=key)
    assert uuid.UUID(keyed).version == 8
    events.check_task_id(keyed)  # still a valid id token


def test_the_id_key_is_made_once_for_the_deployment_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    key = guard.id_key(keys)
    assert len(key) == 32
    assert guard.id_key(keys) == key
    path = keys / "ids.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    with pytest.raises(guard.KeyFileError) as loose:
        guard.id_key(keys)
    assert str(loose.value) == f"key file {path}: readable by others (mode 0640): chmod 600 {path}"
    os.chmod(path, 0o600)
    path.write_text("c2hvcnQ=\n")
    with pytest.raises(guard.KeyFileError) as short:
        guard.id_key(keys)
    assert str(short.value) == f"key file {path}: not an id key (32 random bytes, base64)"


async def test_a_client_who_takes_a_results_unkeyed_id_first_no_longer_drops_the_real_result(
        nats_bus: bus.Bus, tmp_path: Path) -> None:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data")}, dotenv=None)
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="squatted",
                                   tasks=[events.TaskSpec(id="nap", type="sleep", parameters={"seconds": 0.5})])
    # The id the result of attempt 1 has without a key: anyone who reads the submission can work it out.
    predicted = events.derive_id(sub.id, "TaskSucceeded", "nap", 1)
    async with in_process(settings, nats_bus):
        client = WorkflowClient(nats_bus)
        seq = await client.submit(sub)
        squatter = events.AlertRaised(id=predicted, ts=events.now(), workflow_id="_", alert="noise",
                                      severity="info", message="taken first")
        await nats_bus.publish(squatter)
        end, _ = await client.wait("squatted", seq, timeout=30, run_id=sub.id)
    assert isinstance(end, events.WorkflowCompleted), end
    [succeeded] = [e for e in await all_events(nats_bus, events.subject_filter(events.TaskSucceeded, "squatted"))
                   if isinstance(e, events.TaskSucceeded)]
    key = guard.id_key(settings.keys_dir)
    assert succeeded.id == events.derive_id(sub.id, "TaskSucceeded", "nap", 1, key=key) != predicted


def _first_start(keys: str) -> tuple[str, str]:
    """What one actor process starting on a fresh keys dir reads: the id key and its identity."""
    directory = Path(keys)
    return guard.id_key(directory).hex(), guard.Identity.load_or_create(directory, "shared").public_key


def test_processes_starting_together_all_read_the_one_key_made(tmp_path: Path) -> None:
    # Actors started as separate processes at once (tests/test_chaos.py, systemd units) each make
    # the keys they find missing: one makes each file, the others must read it whole, never empty.
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for attempt in range(10):
        keys = str(tmp_path / f"keys-{attempt}")
        with concurrent.futures.ProcessPoolExecutor(8, mp_context=context) as pool:
            seen = set(pool.map(_first_start, [keys] * 8))
        assert len(seen) == 1

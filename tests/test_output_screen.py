"""An output is scanned before it flows on: secrets and personal data redacted in the result the
dependents get, every finding an `OutputFlagged` event, no secret quoted anywhere."""

from __future__ import annotations

import random
import string
from pathlib import Path

import bus
import events
import store
from actors import load_settings
from actors.executor._screen import IN_THREAD_CHARS, screen
from ymera import WorkflowClient

from .engine import in_process


def groq_key() -> str:  # made at test time: the repository holds no key-shaped string
    rnd = random.Random(11)
    return "gsk" + "_" + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(52))


async def test_each_string_of_an_output_is_scanned_and_its_secrets_and_personal_data_redacted() -> None:
    key = groq_key()
    output = {"summary": f"use {key} to call it", "contacts": ["write to ada@example.org", "nothing here"], "n": 3}
    screened, found = await screen(output)
    assert screened == {"summary": "use [REDACTED:groq_api_key] to call it",
                        "contacts": ["write to [REDACTED:email]", "nothing here"], "n": 3}
    assert [(f.kind, f.type, f.field, f.span, f.alert) for f in found.findings] == [
        ("secret", "groq_api_key", "output.summary", (4, 60), "secret_leak"),
        ("pii", "email", "output.contacts[0]", (9, 24), "pii_exposure")]
    assert (found.redacted, found.truncated) == (True, False)
    assert all(key not in f.reason for f in found.findings)


async def test_harmful_content_is_reported_and_left_in_place_and_a_clean_output_passes_as_it_is() -> None:
    text = "Sure! Here is how to make a pipe bomb at home: first"
    screened, found = await screen(text)
    assert screened == text
    assert [f.kind for f in found.findings] == ["harmful"]
    assert not found.redacted
    clean = {"slept": 1.5, "note": "done"}
    screened_clean, nothing = await screen(clean)
    assert (screened_clean, nothing.findings, nothing.redacted) == (clean, [], False)


async def test_a_long_output_is_scanned_off_the_loop_and_past_the_scans_limit_flows_on_unread() -> None:
    key = groq_key()
    text = f"{key} " + "x" * (IN_THREAD_CHARS + 10)
    screened, found = await screen(text)
    assert screened.startswith("[REDACTED:groq_api_key] x")
    assert len(screened) == len(text) - len(key) + 23
    assert [f.type for f in found.findings] == ["groq_api_key"]


async def test_a_run_whose_output_holds_a_key_passes_it_on_redacted_with_an_output_flagged_event(
        nats_bus: bus.Bus, tmp_path: Path) -> None:
    key = groq_key()
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data")}, dotenv=None)
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-leak", tasks=[
        events.TaskSpec(id="leak", type="echo", parameters={"text": f"the key is {key}"}),
        events.TaskSpec(id="next", type="echo", dependencies=["leak"],
                        parameters={"text": "got: {{ tasks.leak.output }}"})])
    async with in_process(settings, nats_bus):
        client = WorkflowClient(nats_bus)
        end, seen = await client.wait(submission.workflow_id, await client.submit(submission), timeout=60,
                                      run_id=submission.id)
    assert isinstance(end, events.WorkflowCompleted), end
    outputs = {e.task_id: e.output for e in seen if isinstance(e, events.TaskSucceeded)}
    assert outputs == {"leak": "the key is [REDACTED:groq_api_key]", "next": "got: the key is [REDACTED:groq_api_key]"}
    [flagged] = [e for e in seen if isinstance(e, events.OutputFlagged)]
    assert (flagged.task_id, flagged.redacted, [f.type for f in flagged.findings]) == ("leak", True, ["groq_api_key"])
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        async for chunk in log.scan("type, data"):
            for kind, data in chunk:  # the key is where the user put it (the task's spec), and nowhere after
                assert kind in ("WorkflowSubmitted", "WorkflowValidated", "TaskReady") or key.encode() not in data


async def test_a_digest_the_task_was_asked_for_is_reported_but_not_changed() -> None:
    digest = {"sha256": "06c49fe47224581d8841493cf1f3ab50d2fe6e59f56deedce13b61c284937f3e"}
    screened, found = await screen(digest)
    assert screened == digest
    assert found.redacted is False
    assert {f.type for f in found.findings} <= {"high_entropy"}

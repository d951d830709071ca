"""Every parser of untrusted input, fed anything (hypothesis): it answers or refuses with a reason
a person can read, and never crashes or hangs. (The sanitiser's and the output scanner's own
fuzz tests are tests/test_sanitize_fuzz.py and tests/test_output_scan_fuzz.py.)"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bus
import events
import guard
from guard._vault import KeyRing, VaultError
from ymera._file import read_workflow

T = TypeVar("T")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIGNER = guard.Identity.generate("executor")
SEALED = bus.seal(SIGNER, [("ymera.task.wf.t.started", b"{}"), ("ymera.task.wf.u.started", b"[]")])


class Ring:
    def actor_of(self, key: str) -> str | None:
        return "executor" if key == SIGNER.key_id else None

    def verify(self, key: str, data: bytes, signature: str) -> bool:
        return guard.verify(SIGNER.public_key, data, signature)


def attempt(fn: Callable[[], T], refusal: type[Exception]) -> tuple[T | None, str | None]:
    """What `fn` returned, or the text of the refusal it raised (any other exception fails the test)."""
    try:
        return fn(), None
    except refusal as exc:
        return None, getattr(exc, "reason", None) or str(exc)


def _pieces() -> st.SearchStrategy[str]:
    """Headers near the real shape: real parts, numbers, base64 and junk, joined by dots."""
    part = st.one_of(st.sampled_from([*SEALED[0].split("."), SIGNER.key_id, "", "0", "1", "-1", "99999999"]),
                     st.text(max_size=20), st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()))
    return st.lists(part, max_size=8).map(".".join)


@FUZZ
@given(sealed=st.one_of(_pieces(), st.text()), data=st.binary(max_size=200), kind=st.sampled_from(
    ["TaskStarted", "TaskReady", "WorkflowSubmitted", "NoSuchEvent"]))
def test_a_signature_header_is_accepted_or_refused_with_a_reason(sealed: str, data: bytes, kind: str) -> None:
    check = bus.SealCheck(Ring(), guard.mac_keys(b"secret"))
    signer, refused = attempt(lambda: check.check(kind, "ymera.task.wf.t.started", data, sealed), bus.UntrustedEvent)
    if refused is not None:
        assert refused.startswith(kind)
    else:
        assert signer in (None, "executor")
        assert signer is None or data in (b"{}", b"[]")  # only what was signed passes


@FUZZ
@given(data=st.binary(max_size=400), subject=st.sampled_from(["ymera.wf.w.submitted", "ymera.task.w.t.ready", "x"]))
def test_a_message_is_an_event_or_refused_with_a_reason(data: bytes, subject: str) -> None:
    event, refused = attempt(lambda: events.decode_message(subject, data), events.MalformedEvent)
    assert refused or (event is not None and events.subject_of(event) == subject)


@FUZZ
@given(text=st.text(max_size=400), suffix=st.sampled_from([".yaml", ".json"]))
def test_a_workflow_file_is_a_submission_or_refused_naming_the_file(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"wf{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        submission, refused = attempt(lambda: read_workflow(path), events.YmeraError)
    if refused is not None:
        assert refused.startswith(str(path))
        assert "\n" not in refused
    else:
        assert submission is not None
        assert submission.workflow_id


@FUZZ
@given(token=st.one_of(st.text(max_size=120), st.builds(lambda kid, body: f"ymera-enc:v1:{kid}:{body}",
                                                       st.sampled_from(["", "00", "x" * 16]), st.text(max_size=60))))
def test_an_encrypted_key_token_decrypts_or_is_refused_without_echoing_it(token: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ring = KeyRing.load(Path(tmp), {}, create=True)
        _, refused = attempt(lambda: guard.decrypt_api_key(token, ring), VaultError)
    assert refused is None or len(token) < 12 or token not in refused


def test_a_json_workflow_file_whose_value_is_of_the_wrong_type_and_malformed_names_the_syntax_error(
        tmp_path: Path) -> None:  # found by the fuzz test above: it raised msgspec's DecodeError
    path = tmp_path / "wf.json"
    path.write_text("0:")
    with pytest.raises(events.YmeraError) as refused:
        read_workflow(path)
    assert str(refused.value) == f"{path}: JSON is malformed: trailing characters (byte 2)"


def test_a_signature_header_with_a_non_ascii_mac_is_refused_with_a_reason() -> None:  # found by the fuzz test
    check = bus.SealCheck(Ring(), guard.mac_keys(b"secret"))
    with pytest.raises(bus.UntrustedEvent) as refused:
        check.check("TaskStarted", "ymera.task.wf.t.started", b"", "\x80")
    assert refused.value.reason == "TaskStarted is signed by key '', which is no actor's key this deployment knows"

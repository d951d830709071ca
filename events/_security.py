"""What the security manager found in what flows through: a submission's text (the security
actor, before admission), untrusted content on its way into a prompt and a task's output (the
executor, before the call and before the output flows on). Each finding says what it is, how
bad, where, and why, never quoting a secret it found."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from ._envelope import EventBase, Name

__all__ = ["CancelRefused", "EdgeFlagged", "InputFlagged", "OutputFlagged", "SecurityFinding", "ToolRefused"]


class SecurityFinding(msgspec.Struct, frozen=True, omit_defaults=True):
    """One finding. `field` names where it is (`description`, `parameters.prompt`, `output`,
    `output.summary`, …); `span` is (start, end) into that field's text as it arrived; `alert`
    is the alert it counts for (`injection_attempt`, `secret_leak`, `pii_exposure`,
    `harmful_content`)."""

    kind: Literal["injection", "secret", "pii", "harmful"]
    type: str  # sql_injection, prompt_injection, …; openai_api_key, email, harmful:malware, …
    severity: Literal["low", "medium", "high", "critical"]
    field: str
    span: tuple[int, int]
    reason: str
    alert: str


class InputFlagged(EventBase, frozen=True, kw_only=True):
    """The security actor's input sanitiser found attack shapes in a submission's tasks.
    `refused`: the submission was refused for them (a high or critical one)."""

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "input"

    submission_id: str
    principal: str
    findings: list[SecurityFinding]
    refused: bool


class OutputFlagged(EventBase, frozen=True, kw_only=True):
    """The executor's output scan found secrets, personal data or harmful content in an
    attempt's output. Secrets and personal data were redacted in the `TaskSucceeded` that
    follows (`redacted`); harmful content is reported, not changed. `truncated`: the output
    was longer than the scan reads."""

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "output"

    task_id: Name
    attempt: int
    findings: list[SecurityFinding]
    redacted: bool
    truncated: bool = False


class EdgeFlagged(EventBase, frozen=True, kw_only=True):
    """The executor's scan of untrusted content on its way into a model's prompt found attack
    shapes: the output of `from_task` (untrusted: a tool's output, a fetched page, user text, or
    content derived from one) as rendered into the prompt of `task_id`, before the call.
    `blocked`: a high or critical finding failed the attempt, and no model was called."""

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "edge"

    task_id: Name  # the edge's head: the task whose prompt it is
    attempt: int
    from_task: Name  # the edge's tail: the dependency whose output it is
    findings: list[SecurityFinding]
    blocked: bool


class ToolRefused(EventBase, frozen=True, kw_only=True):
    """A built-in tool refused a call of a task's attempt (`kind` "refused": a path out of the
    workspace, a host or network not allowed, a program not on the list, a write in read-only
    mode) or stopped it at one of its limits ("limit": time, memory, processes, output, rows).
    The attempt failed with `reason`, the tool's own words. `arguments` are the call's, as the
    tool got them: secrets and personal data redacted, long values cut."""

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "tool"

    task_id: Name
    attempt: int
    tool: str  # the grant it ran under: files, http, sql, command, git, code
    kind: Literal["refused", "limit"] = "refused"
    reason: str
    arguments: dict[str, Any] = {}


class CancelRefused(EventBase, frozen=True, kw_only=True):
    """The distributor refused a `CancelRequested` (its `causation_id`): where a client's
    principal is read off its key (YMERA_NATS_AUTH with signing), a run is cancelled only by
    the principal that submitted it (`submitted_by`) or an admin (YMERA_ADMINS). The run goes
    on as if the cancel had not come; `reason` is what the client that asked is told."""

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "cancel_refused"

    principal: str  # who asked ("" when the cancel named no one)
    submitted_by: str = ""
    reason: str

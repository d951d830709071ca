"""NATS subjects, computed from events and never written by hand.

`ymera.<domain>.<workflow_id>[.<task_id>].<verb>`; ids are validated at decode to be
single subject tokens, so an event can never land on a subject it does not own.
"""

from __future__ import annotations

from ._catalog import Event

__all__ = ["ALL_SUBJECTS", "PREFIX", "subject_of", "subject_of_type", "workflow_subjects"]

PREFIX = "ymera"
ALL_SUBJECTS = f"{PREFIX}.>"


def subject_of(event: Event) -> str:
    task_id = getattr(event, "task_id", None)
    if task_id is None:
        return f"{PREFIX}.{event.domain}.{event.workflow_id}.{event.verb}"
    return f"{PREFIX}.{event.domain}.{event.workflow_id}.{task_id}.{event.verb}"


def subject_of_type(kind: type[Event]) -> str:
    """The subject filter matching every event of one type, in every workflow (and task)."""
    tokens = "*.*" if "task_id" in kind.__struct_fields__ else "*"
    return f"{PREFIX}.{kind.domain}.{tokens}.{kind.verb}"


def workflow_subjects(workflow_id: str) -> list[str]:
    """Subject filters that match every event of one workflow."""
    return [f"{PREFIX}.{domain}.{workflow_id}.>" for domain in ("wf", "task", "sec", "alert", "fb")]

"""NATS subjects, computed from events and never written by hand.

`ymera.<domain>.<workflow_id>[.<task_id>].<verb>`; ids are validated at decode to be
single subject tokens, so an event can never land on a subject it does not own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._catalog import EVENT_TYPES, Event
from ._envelope import NO_WORKFLOW

__all__ = ["ALL_SUBJECTS", "PREFIX", "domain_filter", "subject_filter", "subject_filters", "subject_of",
           "workflow_filter", "workflow_of"]

PREFIX = "ymera"
ALL_SUBJECTS = f"{PREFIX}.>"


def subject_of(event: Event) -> str:
    task_id = getattr(event, "task_id", None)
    if task_id is None:
        return f"{PREFIX}.{event.domain}.{event.workflow_id}.{event.verb}"
    return f"{PREFIX}.{event.domain}.{event.workflow_id}.{task_id}.{event.verb}"


def subject_filter(event_type: type[Event], workflow_id: str = "*", task_id: str = "*") -> str:
    """The subject filter that matches every event of `event_type` of `workflow_id` (and
    `task_id`), any by default; given both ids, the one subject such events have."""
    tokens = f"{workflow_id}.{task_id}" if "task_id" in event_type.__struct_fields__ else workflow_id
    return f"{PREFIX}.{event_type.domain}.{tokens}.{event_type.verb}"


def domain_filter(event_type: type[Event]) -> str:
    """The subject filter that matches every event of `event_type`'s domain, whatever its type."""
    return f"{PREFIX}.{event_type.domain}.>"


def subject_filters(event_types: Iterable[type[Event]]) -> tuple[str, ...]:
    """The filters that match every event of `event_types` and nothing else, each once, in
    order; for every event type there is, the whole stream (`ALL_SUBJECTS`), which also
    carries what is no event yet (the store writer's input)."""
    kinds = tuple(dict.fromkeys(event_types))
    if set(kinds) >= set(EVENT_TYPES.values()):
        return (ALL_SUBJECTS,)
    return tuple(subject_filter(kind) for kind in kinds)


_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def workflow_of(subject: str) -> str:
    """The workflow a subject names, read off the subject alone (a message that is no valid
    event still belongs to one); `NO_WORKFLOW` when it names none."""
    tokens = subject.split(".")
    if len(tokens) >= 4 and tokens[0] == PREFIX and _TOKEN.match(tokens[2]):
        return tokens[2]
    return NO_WORKFLOW


def workflow_filter(workflow_id: str) -> str:
    """The subject filter that matches every event of one workflow, in any domain."""
    return f"{PREFIX}.*.{workflow_id}.>"

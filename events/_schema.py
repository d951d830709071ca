"""The JSON Schema of every event, so a client in any language can publish a valid one."""

from __future__ import annotations

from typing import Any

import msgspec

from ._catalog import EVENT_TYPES, Event
from ._subjects import PREFIX

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    schema = msgspec.json.schema(Event)
    for name, cls in EVENT_TYPES.items():
        definition = schema["$defs"][name]
        definition["properties"]["ts"].update(format="date-time", description="RFC 3339, with offset")
        task = ".<task_id>" if "task_id" in definition["properties"] else ""
        definition["x-ymera-subject"] = f"{PREFIX}.{cls.domain}.<workflow_id>{task}.{cls.verb}"
    schema["title"] = "Ymera events"
    schema["description"] = (
        f"Every event on the {PREFIX}.> subjects, as JSON. Publish one to its subject "
        f"{PREFIX}.<domain>.<workflow_id>[.<task_id>].<verb> with header Nats-Msg-Id set to "
        "its id (each definition's x-ymera-subject gives its subject); `ts` is RFC 3339, `type` "
        "names the event."
    )
    return schema

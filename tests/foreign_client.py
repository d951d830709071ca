"""A workflow submitter that knows Ymera only through its JSON Schema and the NATS wire protocol.

It stands in for a client written in any other language: it imports the Python standard
library and nothing else (no Ymera, no nats-py; the tests run it with `python -I -S`, where
nothing else is importable), builds a `WorkflowSubmitted` document from what the schema
file says, and publishes it with the plain NATS text protocol over a TCP socket.

    python foreign_client.py NATS_URL SCHEMA_FILE WORKFLOW_ID \
        --task ID:TYPE[:DEP,DEP...] [--task ...] [--copies N] [--drop-task-field FIELD]

On stdout it prints one JSON object: {"subject", "event", "acks": [PubAck, ...]}. It exits
0 only if every publish was acknowledged by JetStream with a `seq` and no `error`; 1 if
the server refused or did not answer; 2 if the schema asks for something it cannot fill.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

EVENT = "WorkflowSubmitted"
TASK = "TaskSpec"
# The header JetStream dedupes on; the schema's description says to set it to the event id.
MSG_ID_HEADER = "Nats-Msg-Id"
CRLF = b"\r\n"


class SchemaMismatch(Exception):
    """The schema asks for something this client does not know how to provide."""


class NatsRefused(Exception):
    """The server or the stream did not accept what was sent."""


# ---- the document, from the schema ----------------------------------------------------------


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s ("#/$defs/Name") until a definition."""
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise SchemaMismatch(f"cannot follow non-local $ref {ref!r}")
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def definition(schema: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        return resolve(schema, schema["$defs"][name])
    except KeyError:
        raise SchemaMismatch(f"the schema has no $defs/{name}") from None


def constant(prop: dict[str, Any], what: str) -> Any:
    """The one value a property allows (`const`, or an `enum` of one)."""
    if "const" in prop:
        return prop["const"]
    if len(prop.get("enum", ())) == 1:
        return prop["enum"][0]
    raise SchemaMismatch(f"{what} is not fixed to one value in the schema: {prop}")


def check_pattern(prop: dict[str, Any], value: str, what: str) -> None:
    pattern = prop.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        raise SchemaMismatch(f"{what} {value!r} does not match the schema's pattern {pattern}")


def check_fillable(defn: dict[str, Any], name: str, fill: dict[str, Any]) -> None:
    """Every required field is one we fill, and every field we fill is one the schema has."""
    missing = sorted(set(defn.get("required", ())) - set(fill))
    if missing:
        raise SchemaMismatch(f"{name} requires {', '.join(missing)}, which this client cannot fill")
    unknown = sorted(set(fill) - set(defn.get("properties", {})))
    if unknown:
        raise SchemaMismatch(f"{name} has no field {', '.join(unknown)}")


def parse_task(text: str) -> tuple[str, str, list[str]]:
    task_id, sep, rest = text.partition(":")
    task_type, _, deps = rest.partition(":")
    if not sep or not task_id or not task_type:
        raise argparse.ArgumentTypeError(f"a task is ID:TYPE[:DEP,DEP...], not {text!r}")
    return task_id, task_type, [d for d in deps.split(",") if d]


def build_task(schema: dict[str, Any], task_id: str, task_type: str, deps: list[str]) -> dict[str, Any]:
    defn = definition(schema, TASK)
    fill: dict[str, Any] = {"id": task_id, "type": task_type}
    if deps:
        fill["dependencies"] = deps
    check_fillable(defn, TASK, fill)
    check_pattern(defn["properties"]["id"], task_id, "task id")
    return fill


def build_event(schema: dict[str, Any], workflow_id: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    defn = definition(schema, EVENT)
    props = defn.get("properties", {})
    tag_field = schema.get("discriminator", {}).get("propertyName", "type")
    if tag_field not in props:
        raise SchemaMismatch(f"{EVENT} has no tag field {tag_field!r}")
    fill: dict[str, Any] = {
        tag_field: constant(props[tag_field], f"{EVENT}.{tag_field}"),
        "id": str(uuid.uuid4()),
        # The schema's description: "`ts` is RFC 3339".
        "ts": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "workflow_id": workflow_id,
        "tasks": tasks,
    }
    check_fillable(defn, EVENT, fill)
    check_pattern(props["workflow_id"], workflow_id, "workflow id")
    return fill


def subject_for(schema: dict[str, Any], workflow_id: str) -> str:
    """The subject to publish on, from the definition's `x-ymera-subject` template."""
    template = definition(schema, EVENT).get("x-ymera-subject")
    if not isinstance(template, str) or "<workflow_id>" not in template:
        raise SchemaMismatch(f"{EVENT} has no x-ymera-subject template with <workflow_id>")
    subject = template.replace("<workflow_id>", workflow_id)
    if "<" in subject:
        raise SchemaMismatch(f"{EVENT}'s subject {template!r} needs a value this client cannot fill")
    return subject


# ---- the NATS text protocol ------------------------------------------------------------------


class Connection:
    """Just enough of a NATS client: CONNECT, SUB, HPUB, PING/PONG, MSG/HMSG."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("nats", ""):
            raise NatsRefused(f"only nats:// URLs are supported, not {url}")
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout)
        self.buffer = b""
        verb, info = self.read_line().split(" ", 1)
        if verb != "INFO":
            raise NatsRefused(f"expected INFO from the server, got {verb}")
        self.info = json.loads(info)
        if not self.info.get("headers"):
            raise NatsRefused("the server does not support headers, so Nats-Msg-Id cannot be sent")
        if self.info.get("auth_required"):
            raise NatsRefused("the server requires authentication, which this client does not do")
        options = {"verbose": False, "pedantic": True, "headers": True, "no_responders": True,
                   "protocol": 1, "lang": "python-stdlib", "version": "0", "name": "ymera-foreign-client"}
        self.send(b"CONNECT " + json.dumps(options).encode() + CRLF)
        self.inbox = f"_INBOX.{uuid.uuid4().hex}"
        self.send(f"SUB {self.inbox}.* 1".encode() + CRLF)
        self.ping()  # CONNECT and SUB were accepted once the PONG comes back

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise NatsRefused("the server closed the connection")
        self.buffer += chunk

    def read_line(self) -> str:
        while CRLF not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(CRLF, 1)
        return line.decode()

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n + 2:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n + 2 :]  # + the CRLF after a payload
        return data

    def next_op(self) -> tuple[str, list[str], bytes]:
        """The next protocol message other than keep-alives: (verb, args, payload)."""
        while True:
            line = self.read_line()
            verb, _, rest = line.partition(" ")
            args = rest.split()
            if verb == "PING":
                self.send(b"PONG" + CRLF)
            elif verb in ("+OK", "INFO"):
                continue
            elif verb == "-ERR":
                raise NatsRefused(f"server error: {rest}")
            elif verb in ("MSG", "HMSG"):  # the last argument is the byte count either way
                return verb, args, self.read_exact(int(args[-1]))
            else:
                return verb, args, b""

    def ping(self) -> None:
        self.send(b"PING" + CRLF)
        verb, args, _ = self.next_op()
        if verb != "PONG":
            raise NatsRefused(f"expected PONG, got {verb} {' '.join(args)}")

    def request(self, subject: str, headers: dict[str, str], payload: bytes, token: str) -> dict[str, Any]:
        """HPUB with a reply subject, and return the JSON that answers on it (the PubAck)."""
        head = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        block = head.encode()
        reply = f"{self.inbox}.{token}"
        if len(block) + len(payload) > self.info.get("max_payload", 1 << 20):
            raise NatsRefused(f"{len(block) + len(payload)} bytes exceed the server's max_payload")
        self.send(f"HPUB {subject} {reply} {len(block)} {len(block) + len(payload)}".encode() + CRLF
                  + block + payload + CRLF)
        while True:
            verb, args, data = self.next_op()
            if verb not in ("MSG", "HMSG") or args[0] != reply:
                continue
            if verb == "HMSG":
                header_len = int(args[-2])
                status = data[:header_len].split(CRLF, 1)[0].decode()  # "NATS/1.0 503" etc.
                data = data[header_len:]
                if status.split()[1:2] == ["503"]:
                    raise NatsRefused(f"no stream listens on {subject} (no responders)")
            return dict(json.loads(data))

    def close(self) -> None:
        self.sock.close()


# ---- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="the NATS server, nats://host:port")
    p.add_argument("schema", help="the output of `ymera schema`")
    p.add_argument("workflow_id")
    p.add_argument("--task", action="append", type=parse_task, default=[], metavar="ID:TYPE[:DEPS]")
    p.add_argument("--copies", type=int, default=1, help="publish the same event this many times")
    p.add_argument("--drop-task-field", metavar="FIELD",
                   help="deliberately violate the schema: remove FIELD from every task before publishing")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args(argv)

    try:
        with open(args.schema, encoding="utf-8") as f:
            schema = json.load(f)
        tasks = [build_task(schema, *task) for task in args.task]
        event = build_event(schema, args.workflow_id, tasks)
        subject = subject_for(schema, args.workflow_id)
    except SchemaMismatch as exc:
        print(f"foreign-client: {exc}", file=sys.stderr)
        return 2
    if args.drop_task_field:
        for task in event["tasks"]:
            task.pop(args.drop_task_field, None)

    payload = json.dumps(event, separators=(",", ":")).encode()
    acks: list[dict[str, Any]] = []
    try:
        conn = Connection(args.url, args.timeout)
        try:
            for n in range(args.copies):
                acks.append(conn.request(subject, {MSG_ID_HEADER: event["id"]}, payload, str(n)))
        finally:
            conn.close()
    except (NatsRefused, OSError) as exc:  # socket.timeout is an OSError
        print(f"foreign-client: {exc}", file=sys.stderr)
        return 1
    finally:
        print(json.dumps({"subject": subject, "event": event, "acks": acks}))
    ok = all("seq" in ack and "error" not in ack for ack in acks) and len(acks) == args.copies
    if not ok:
        print(f"foreign-client: the stream did not accept the event: {acks}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

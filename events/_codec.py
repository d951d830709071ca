"""JSON on the wire: one encoder, one decoder for the whole union, one error type.

Validation happens here, once, at the edge; inside Ymera the types are trusted.
"""

from __future__ import annotations

import msgspec

from ._catalog import Event
from ._errors import MalformedEvent
from ._subjects import subject_of

__all__ = ["MAX_EVENT_BYTES", "decode", "decode_message", "encode", "excerpt", "one_line"]

# Larger events are refused: values that big travel as blobs (see `events.offload`).
# Half of NATS's default 1 MiB max_payload, leaving room for headers and growth.
MAX_EVENT_BYTES = 512 * 1024
EXCERPT_CHARS = 200

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    if len(data) > MAX_EVENT_BYTES:
        raise MalformedEvent(
            f"message is {len(data)} bytes, over the {MAX_EVENT_BYTES}-byte event limit "
            "(large values must travel as blobs)"
        )
    try:
        event: Event = _decoder.decode(data)
        return event
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith("Invalid value") and message.endswith("at `$.type`"):
            tag = message[len("Invalid value ") : -len(" - at `$.type`")]
            raise MalformedEvent(f"unknown event type {tag} (`ymera schema` lists them)") from None
        raise MalformedEvent(f"not a valid event: {message}") from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"not valid JSON: {exc}") from None


def decode_message(subject: str, data: bytes) -> Event:
    """Decode a message from the bus, refusing an event published on a subject not its own."""
    event = decode(data)
    expected = subject_of(event)
    if subject != expected:
        raise MalformedEvent(
            f"{type(event).__name__} {event.id} was published on {subject} but belongs on {expected}"
        )
    return event


def excerpt(data: bytes) -> str:
    """The start of a message as text, bounded, for a rejection a person will read."""
    text = data[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS or len(data) > EXCERPT_CHARS * 4 else "")


def one_line(error: Exception) -> str:
    """A decoder's error as the one line a user reads (a YAML parser's spans several)."""
    parts = [line.strip().replace('in "<byte string>", ', "") for line in str(error).splitlines()]
    return ": ".join(p for p in parts if p)

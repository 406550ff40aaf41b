"""What Relay's decoder (prost) refuses in a request that upb, the emulator's decoder, accepts.

Relay decodes an OTLP/protobuf request with prost after answering 202, and drops the whole request when it
does not decode (`invalid_protobuf`). upb is laxer in a few places; this module finds them on the message upb
parsed, independently of the forwarder's own wire check (`sentryroute_forwarder.route.wirecheck`, a walk of
the raw bytes), so tests can hold one against the other:

- a known field sent with another wire type: upb keeps it as an unknown field with the known field number,
  prost refuses it (`check_wire_type`);
- nesting: prost refuses a message deeper than 100 levels (the request is level 0), and any unknown field
  inside a message at level 100 or nested in groups down to that budget (`skip_field` checks the limit too).

Not reproduced (the forwarder's wire check refuses both; only the emulator accepts them): a varint whose 10th
byte exceeds 1 (prost: overflow; upb truncates it and the parsed message cannot tell), and an unknown field or
wrong wire type more than 63 levels deep when no shallower one exists (the cheap first check below relies on
upb's DiscardUnknownFields, which stops at that depth; walking every message of every request would triple the
emulator's decoding cost); and anything inside a oneof value that a later value of the same oneof replaces
(upb keeps only the last one, prost decodes both).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

__all__ = ["RECURSION_LIMIT", "prost_refusal"]

RECURSION_LIMIT = 100
_START_GROUP = 3


def prost_refusal(request: Message) -> str | None:
    """Why prost would refuse `request` (as parsed by upb), or None when it decodes.

    upb already refuses what is deeper than 100 levels, so only a request with unknown fields can differ:
    finding out is cheap (~4 µs per span), walking every message's unknown fields is not (~25 µs).
    """
    stripped = type(request)()
    stripped.CopyFrom(request)
    stripped.DiscardUnknownFields()
    if stripped.ByteSize() == request.ByteSize():
        return None
    return _message(request, 0)


def _message(message: Message, level: int) -> str | None:
    if level > RECURSION_LIMIT:
        return f"{message.DESCRIPTOR.name}: nested deeper than {RECURSION_LIMIT} messages"
    known = message.DESCRIPTOR.fields_by_number
    budget = RECURSION_LIMIT - level  # prost's DecodeContext for this message's fields
    unknowns = UnknownFieldSet(message)
    for unknown in (unknowns[i] for i in range(len(unknowns))):
        if unknown.field_number in known:
            name = known[unknown.field_number].name
            return f"{message.DESCRIPTOR.name}.{name}: wire type {unknown.wire_type} is not the field's"
        if budget == 0 or (unknown.wire_type == _START_GROUP and not _group_fits(unknown.data, budget)):
            return f"{message.DESCRIPTOR.name}: unknown field nested deeper than {RECURSION_LIMIT} levels"
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        for child in value if descriptor.is_repeated else (value,):
            if (reason := _message(child, level + 1)) is not None:
                return reason
    return None


def _group_fits(fields: Any, budget: int) -> bool:
    """prost skips a group's fields with one less budget each level down, and refuses at 0."""
    for inner in fields:
        if budget - 1 == 0:
            return False
        if inner.wire_type == _START_GROUP and not _group_fits(inner.data, budget - 1):
            return False
    return True

"""Correcting a resource's `k8s.namespace.name` on the wire (SPEC §6.1, `--namespace-from peer`).

Only resources whose claim differs from the sender's true namespace are rewritten, so the common cases (no
claim, or a correct one) cost nothing. A rewrite touches one record: its `Resource` (field 1, a few hundred
bytes) is decoded, corrected and re-encoded; the spans or log records after it are copied as bytes, never
decoded.
"""

from __future__ import annotations

from opentelemetry.proto.resource.v1 import resource_pb2

from sentryroute.routes import NAMESPACE_ATTRIBUTE
from sentryroute_forwarder.route.wire import MalformedPayload, read_varint, skip_scalar

__all__ = ["set_namespace"]

_RESOURCE_TAG = (1 << 3) | 2  # field 1, length-delimited, in ResourceSpans and ResourceLogs alike


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: int, body: bytes) -> bytes:
    return _encode_varint(tag) + _encode_varint(len(body)) + body


def _split_resource(body: memoryview) -> tuple[bytes, list[bytes]]:
    """(the record body without its Resource fields, the Resource fields' contents in order)."""
    rest: list[memoryview] = []
    resources: list[bytes] = []
    pos, end = 0, len(body)
    while pos < end:
        start = pos
        tag, pos = read_varint(body, pos)
        wire_type = tag & 7
        if wire_type == 2:
            length, pos = read_varint(body, pos)
            if length > end - pos:
                raise MalformedPayload("length-delimited field runs past the end of the record")
            if tag == _RESOURCE_TAG:
                resources.append(bytes(body[pos : pos + length]))
            else:
                rest.append(body[start : pos + length])
            pos += length
            continue
        pos = skip_scalar(body, pos, wire_type)
        rest.append(body[start:pos])
    if pos != end:
        raise MalformedPayload("fixed-size field runs past the end of the record")
    return b"".join(rest), resources


def set_namespace(record: memoryview, namespace: str | None) -> bytes:
    """`record` (tag + length + ResourceSpans/ResourceLogs body) with every `k8s.namespace.name` of its
    Resource replaced by one saying `namespace`, or removed when `namespace` is None."""
    tag, pos = read_varint(record, 0)
    _, pos = read_varint(record, pos)
    rest, parts = _split_resource(record[pos:])
    resource = resource_pb2.Resource()
    for part in parts:  # protobuf merges repeated occurrences of a message field
        resource.MergeFromString(part)
    kept = [pair for pair in resource.attributes if pair.key != NAMESPACE_ATTRIBUTE]
    del resource.attributes[:]
    resource.attributes.extend(kept)
    if namespace is not None:
        resource.attributes.add(key=NAMESPACE_ATTRIBUTE).value.string_value = namespace
    body = _length_delimited(_RESOURCE_TAG, resource.SerializeToString()) + rest
    return _length_delimited(tag, body)

"""Intake validation: only records Sentry can decode may join a batch (one bad record would sink all of it).

Batches concatenate resource records of many requests, and Sentry (Relay, prost) decodes a batch whole: a
record that does not decode makes it drop every other client's data in that batch. So every request is
decoded in full once, at intake, by upb (C speed): framing and lengths of every nested field, UTF-8 of every
`string` field, and nesting depth (upb stops at 100 levels, as prost does).

The fast path is one upb parse of the whole request, which also yields the routing attributes and item
counts (it replaces the lite parse of `wire.parse_records`). Only when it fails is each resource record
parsed alone, so a bad record is rejected by itself and the request's other records still go through.

Not checked, for speed (measured in docs/reliability.md): id sizes (trace_id 16 bytes, span_id 8) cost
~0.25 µs per span in Python, and Relay drops a span with a bad id by itself, so it harms no other data; and
a known field sent with the wrong wire type, which upb keeps as an unknown field (prost rejects it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.route.wire import ResourceRecord, lite_items, record_bounds, resource_attributes

__all__ = ["INVALID", "Rejected", "Validation", "validate_request"]

#: The dropped-items reason (and partial_success wording) of records that fail validation.
INVALID = "invalid"
_REQUEST: dict[Signal, Any] = {Signal.TRACES: ExportTraceServiceRequest, Signal.LOGS: ExportLogsServiceRequest}


@dataclass(frozen=True, slots=True)
class Rejected:
    """One resource record that failed validation."""

    index: int  # position among the request's resource records
    items: int  # spans or log records in it, as far as its framing can be read (0 when it cannot)
    reason: str  # short, safe to return to the client


@dataclass(slots=True)
class Validation:
    records: list[ResourceRecord] = field(default_factory=list)  # valid records, in request order
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def rejected_items(self) -> int:
        return sum(r.items for r in self.rejected)

    def describe_rejections(self, *, limit: int = 3) -> str:
        """`resource 2: reason; resource 5: reason` for the first `limit` rejections."""
        shown = "; ".join(f"resource {r.index}: {r.reason}" for r in self.rejected[:limit])
        more = len(self.rejected) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


def validate_request(signal: Signal, body: bytes | memoryview, *, keys: Collection[str] | None = None) -> Validation:
    """Every resource record of an Export*ServiceRequest, valid or rejected (with its reason).

    Raises `wire.MalformedPayload` when the top-level framing is broken: then no record can be told apart.
    """
    buf = memoryview(body)
    bounds = record_bounds(buf)
    result = Validation()
    try:
        # bytes, not the memoryview: upb copies anything else into a new bytes object first (240 KB per request)
        request = _REQUEST[signal].FromString(body if isinstance(body, bytes) else bytes(buf))
    except DecodeError:
        request = None
    if request is not None:
        parsed = request.resource_spans if signal is Signal.TRACES else request.resource_logs
        for (start, _, end), message in zip(bounds, parsed, strict=True):
            _add(result, signal, buf[start:end], message, keys)
        return result
    # Each record alone, but parsed as a one-record request: at the depth it has in a batch (parsed as the
    # root, a record would get one more level of nesting than Sentry allows it).
    request_type = _REQUEST[signal]
    for index, (start, body_start, end) in enumerate(bounds):
        try:
            alone = request_type.FromString(buf[start:end])
        except DecodeError as exc:
            result.rejected.append(Rejected(index, lite_items(buf[body_start:end]), _decode_reason(exc)))
            continue
        message = alone.resource_spans[0] if signal is Signal.TRACES else alone.resource_logs[0]
        _add(result, signal, buf[start:end], message, keys)
    return result


def _add(result: Validation, signal: Signal, data: memoryview, message: Any, keys: Collection[str] | None) -> None:
    if signal is Signal.TRACES:
        items = sum(len(scope.spans) for scope in message.scope_spans)
    else:
        items = sum(len(scope.log_records) for scope in message.scope_logs)
    result.records.append(ResourceRecord(data=data, attributes=resource_attributes(message, keys), items=items))


def _decode_reason(exc: DecodeError) -> str:
    text = str(exc)
    # upb: "Error parsing message with type 'opentelemetry.proto.trace.v1.Span': String field had bad UTF-8"
    detail = text.rpartition(": ")[2] if "': " in text else ""
    return f"not valid protobuf ({detail[:120]})" if detail else "not valid protobuf"

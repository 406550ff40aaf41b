"""Intake validation: only records Sentry can decode may join a batch (one bad record would sink all of it).

Batches concatenate resource records of many requests, and Sentry (Relay) decodes a batch whole with prost:
a record that does not decode makes it drop every other client's data in that batch, after answering 202. So
every resource record of every request is checked at intake by `wirecheck`, a walk of the record under
prost's rules: framing and lengths of every nested field, the wire type of every known field, UTF-8 of every
`string` field, nesting depth (prost's limit of 100), unknown fields and groups skipped as prost skips them.
It runs compiled (mypyc, ~0.2 µs per span, less than half of upb's parse it replaced); docs/reliability.md has the
figures.

The walk also yields what routing needs: the item count and where the `Resource` is, whose string
attributes the compiled `wirecheck.routing_attributes` reads; only a Resource in an unusual shape (fields that
protobuf merges) is decoded by upb. A record that fails is rejected alone, with a short reason, and
the request's other records go through.

Not checked, on purpose: id sizes (`trace_id` 16 bytes, `span_id` 8). Relay decodes them as bytes and drops
a span whose ids are bad (or, for a log record, replaces its trace id) one item at a time, after the batch has
decoded, so they harm no other data; rejecting here would drop a whole resource's items for one bad span.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.route import wirecheck
from sentryroute_forwarder.route.wire import ResourceRecord, lite_items, record_bounds, resource_attributes

__all__ = ["INVALID", "WIRE_CHECK_MODE", "Rejected", "Validation", "validate_request", "warn_if_slow"]

log = logging.getLogger(__name__)

#: The dropped-items reason (and partial_success wording) of records that fail validation.
INVALID = "invalid"
#: "compiled" (mypyc, the normal install) or "interpreted" (~70x slower: SENTRYROUTE_PURE_PYTHON=1 installs).
WIRE_CHECK_MODE = "compiled" if wirecheck.COMPILED else "interpreted"

_SCHEMA = wirecheck.build_schema([ExportTraceServiceRequest.DESCRIPTOR, ExportLogsServiceRequest.DESCRIPTOR])
_RESOURCE = Resource.DESCRIPTOR.full_name
_CHECKS = {
    Signal.TRACES: wirecheck.RecordCheck(
        _SCHEMA, "opentelemetry.proto.trace.v1.ResourceSpans", "opentelemetry.proto.trace.v1.Span", _RESOURCE
    ),
    Signal.LOGS: wirecheck.RecordCheck(
        _SCHEMA, "opentelemetry.proto.logs.v1.ResourceLogs", "opentelemetry.proto.logs.v1.LogRecord", _RESOURCE
    ),
}


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
    data = body if isinstance(body, bytes) else bytes(body)  # the compiled walk indexes bytes natively
    buf = memoryview(data)
    check = _CHECKS[signal]
    result = Validation()
    for index, (start, body_start, end) in enumerate(record_bounds(buf)):
        try:
            walk = check.check(data, body_start, end)
            attributes = wirecheck.routing_attributes(data, walk.resources, keys)
            if attributes is None:  # a Resource in an unusual shape: protobuf's merge rules, by upb
                attributes = resource_attributes(_resource(data, walk.resources), keys)
        except (wirecheck.WireError, DecodeError) as exc:
            reason = f"not valid protobuf ({str(exc)[:160]})"
            result.rejected.append(Rejected(index, lite_items(buf[body_start:end]), reason))
            continue
        result.records.append(ResourceRecord(data=buf[start:end], attributes=attributes, items=walk.items))
    return result


def _resource(data: bytes, bounds: list[tuple[int, int]]) -> Resource:
    """The record's Resource; several `resource` fields merge, as protobuf says (concatenation is merging)."""
    if len(bounds) == 1:
        start, end = bounds[0]
        return Resource.FromString(data[start:end])
    return Resource.FromString(b"".join(data[start:end] for start, end in bounds))


def warn_if_slow() -> None:
    """Log a warning when the wire check runs interpreted (an install without its compiled extension)."""
    if wirecheck.COMPILED:
        source, built = Path(wirecheck.source_path()), Path(wirecheck.__file__ or "")
        if source.exists() and built.exists() and source.stat().st_mtime > built.stat().st_mtime:
            log.warning(
                "the compiled wire check (%s) is older than its source: re-install the package "
                "(make .venv/.dev-installed) so intake validation runs the current rules",
                wirecheck.__file__,
            )
        return
    log.warning(
        "intake validation runs the INTERPRETED wire check (%s): about 70x slower than the compiled one, "
        "so throughput is a fraction of normal. Install the package with a C compiler (not "
        "SENTRYROUTE_PURE_PYTHON=1) to build it.",
        wirecheck.__file__,
    )

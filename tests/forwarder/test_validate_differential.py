"""Intake validation against a full decode and against the lite wire read, on generated and corrupted requests.

`validate_request` must agree with the two other readers of a request: for a valid request, every record is
accepted with the attributes the lite read (`parse_records`) finds and the item count a full decode of the
opentelemetry-proto classes finds, and the records concatenate to the body. For a request with one record
corrupted inside its framing, the records that pass are exactly those that decode in full on their own, and
whatever passes decodes as one request: the property a batch to Sentry needs.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.route.validate import validate_request
from sentryroute_forwarder.route.wire import parse_records, record_bounds

from tests.forwarder import otlp_strategies

KEYS = frozenset({"service.name", "k8s.namespace.name"})
REQUEST: dict[Signal, Any] = {Signal.TRACES: ExportTraceServiceRequest, Signal.LOGS: ExportLogsServiceRequest}
EXAMPLES = settings(
    max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

texts = st.text(max_size=12)  # any Unicode, so UTF-8 of several bytes per character too
any_values = otlp_strategies.any_values(texts, max_bytes=8, max_leaves=6)
attributes = st.lists(
    st.builds(KeyValue, key=st.one_of(texts, st.sampled_from(sorted(KEYS))), value=any_values), max_size=4
)


@st.composite
def resources(draw: st.DrawFn) -> Resource:
    extra = draw(attributes)
    service = draw(st.one_of(st.none(), texts))
    named = [] if service is None else [KeyValue(key="service.name", value=AnyValue(string_value=service))]
    return Resource(attributes=named + extra)


@st.composite
def requests(draw: st.DrawFn, signal: Signal) -> bytes:
    request = REQUEST[signal]()
    for _ in range(draw(st.integers(1, 4))):
        resource = draw(resources())
        scopes = draw(st.integers(0, 2))
        if signal is Signal.TRACES:
            spans = [
                [Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name=draw(texts), attributes=draw(attributes))]
                * draw(st.integers(0, 3))
                for _ in range(scopes)
            ]
            request.resource_spans.append(
                ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=s) for s in spans])
            )
        else:
            records = [
                [LogRecord(body=draw(any_values), attributes=draw(attributes))] * draw(st.integers(0, 3))
                for _ in range(scopes)
            ]
            request.resource_logs.append(
                ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=r) for r in records])
            )
    body: bytes = request.SerializeToString()
    return body


def full_items(signal: Signal, record: bytes) -> int:
    """Items of one record by a full decode of the generated classes (raises DecodeError when it does not decode)."""
    request = REQUEST[signal].FromString(record)
    if signal is Signal.TRACES:
        return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    return sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)


def decodes(signal: Signal, body: bytes) -> bool:
    try:
        REQUEST[signal].FromString(body)
    except DecodeError:
        return False
    return True


signals = st.sampled_from([Signal.TRACES, Signal.LOGS])


@EXAMPLES
@given(data=st.data(), signal=signals)
def test_valid_requests_agree_with_the_lite_read_and_a_full_decode(data: st.DataObject, signal: Signal) -> None:
    body = data.draw(requests(signal))
    validation = validate_request(signal, body, keys=KEYS)
    assert validation.rejected == []
    assert b"".join(record.data for record in validation.records) == body
    lite = parse_records(body, keys=KEYS)
    assert [r.attributes for r in validation.records] == [r.attributes for r in lite]
    assert [r.items for r in validation.records] == [full_items(signal, bytes(r.data)) for r in validation.records]


@EXAMPLES
@given(data=st.data(), signal=signals)
def test_what_passes_a_corrupted_request_decodes_in_full(data: st.DataObject, signal: Signal) -> None:
    body = bytearray(data.draw(requests(signal)))
    bounds = record_bounds(memoryview(bytes(body)))
    index = data.draw(st.integers(0, len(bounds) - 1))
    _, body_start, end = bounds[index]
    if end > body_start:  # overwrite bytes inside one record: the request's own framing stays intact
        for _ in range(data.draw(st.integers(1, 3))):
            body[data.draw(st.integers(body_start, end - 1))] = data.draw(st.integers(0, 255))
    corrupted = bytes(body)
    validation = validate_request(signal, corrupted, keys=KEYS)

    records = [corrupted[start:stop] for start, _, stop in bounds]
    accepted = [bytes(record.data) for record in validation.records]
    rejected = {r.index for r in validation.rejected}
    event("a record rejected" if rejected else "nothing rejected")
    # Exactly the records that decode alone pass, in request order; each rejection names one that does not.
    assert accepted == [record for i, record in enumerate(records) if i not in rejected]
    assert all(decodes(signal, record) for record in accepted)
    assert not any(decodes(signal, records[i]) for i in rejected)
    assert rejected <= {index}
    # What passes may be batched: joined, it decodes as one request.
    assert decodes(signal, b"".join(accepted))

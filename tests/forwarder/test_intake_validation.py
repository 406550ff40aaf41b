"""Intake validation over real sockets: a corrupt record never joins a batch, so other clients lose nothing.

The reproduction of issue 10: a ~100-byte body, `service.name=checkout`, one valid span and one span whose
trace_id claims 255 bytes, sent while another client streams well-formed spans for the same project. Before
validation the corrupt span was batched with the other client's data and Sentry dropped the whole batch.
"""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.route.validate import validate_request

from sentryroute.emulator import SentryEmulator
from tests.forwarder.support import (
    emulator_projects,
    emulator_table,
    field,
    local_settings,
    logs_request,
    metric_value,
    resource,
    resource_spans,
    traces_request,
    varint,
    wait_until,
    write_table,
)
from tests.forwarder.test_wirecheck import WRONG_WIRE_TYPES

PROTOBUF = {"Content-Type": "application/x-protobuf"}
_ids = itertools.count(1)


def good_span(name: str = "ok") -> Span:
    return Span(trace_id=b"\x01" * 16, span_id=next(_ids).to_bytes(8, "big"), name=name)


def poisoned_request(service: str = "checkout") -> bytes:
    """The issue's reproduction: one valid span, then one whose trace_id field claims 255 bytes."""
    bad_span = b"\x0a" + varint(255) + b"\x00" * 16
    scope = ScopeSpans(spans=[good_span()]).SerializeToString() + field(2, bad_span)
    record = field(1, resource({"service.name": service}).SerializeToString()) + field(2, scope)
    return field(1, record)


def deep_value(levels: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for _ in range(levels):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


def corrupt_variants() -> dict[str, bytes]:
    """Whole requests whose only resource is corrupt below the resource level."""
    bad_utf8 = field(2, good_span("\u00e9").SerializeToString().replace("\u00e9".encode(), b"\xff\xfe"))
    bad_utf8_record = field(1, resource({"service.name": "checkout"}).SerializeToString()) + field(2, bad_utf8)
    # 60 nested arrays: ~125 levels of messages, past upb's and prost's 100 (built by hand: upb would not encode it).
    deep = deep_value(40).SerializeToString()
    for _ in range(20):
        deep = field(5, field(1, deep))
    deep_span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).SerializeToString() + field(
        9, field(1, b"k") + field(2, deep)
    )
    deep_record = field(1, resource({"service.name": "checkout"}).SerializeToString()) + field(2, field(2, deep_span))
    return {
        "trace-id-255": poisoned_request(),
        "bad-utf8-span-name": field(1, bad_utf8_record),
        "deep-any-value": field(1, deep_record),
    }


@pytest.mark.parametrize("name", sorted(corrupt_variants()))
def test_validation_rejects_each_corruption(name):
    validation = validate_request(Signal.TRACES, corrupt_variants()[name])
    assert validation.records == []
    assert len(validation.rejected) == 1


def test_the_reproduction_is_about_100_bytes():
    assert 80 <= len(poisoned_request()) <= 120


def test_valid_records_pass_with_their_attributes_and_counts():
    body = traces_request(resource_spans("orders", spans=4, scopes=2), resource_spans("products")).SerializeToString()
    validation = validate_request(Signal.TRACES, body, keys={"service.name"})
    assert validation.rejected == []
    assert [(r.attributes, r.items) for r in validation.records] == [
        ({"service.name": "orders"}, 8),
        ({"service.name": "products"}, 3),
    ]


def test_one_bad_record_is_rejected_alone():
    good = traces_request(resource_spans("orders")).SerializeToString()
    body = good + corrupt_variants()["bad-utf8-span-name"] + good
    validation = validate_request(Signal.TRACES, body)
    assert [r.index for r in validation.rejected] == [1]
    assert "UTF-8" in validation.rejected[0].reason
    assert len(validation.records) == 2
    assert b"".join(r.data for r in validation.records) == good + good


# -- over real sockets, with the Sentry emulator as the upstream ---------------------------------------------


@pytest.fixture
async def checkout(tmp_path, emulator: SentryEmulator):
    services = emulator_projects(emulator, {"checkout": "checkout", "orders": "orders"})
    routes = tmp_path / "routes.json"
    write_table(routes, emulator_table(emulator, services))
    settings = local_settings(routes, batch_timeout=0.05)
    async with Forwarder(settings) as forwarder:
        yield forwarder, services["checkout"][0].id


async def test_a_poisoned_request_costs_another_client_nothing(checkout, emulator, http):
    forwarder, project_id = checkout
    url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
    sent: list[str] = []

    async def well_formed_client() -> None:
        for _ in range(20):
            spans = [good_span(f"client-{i}") for i in range(5)]
            sent.extend(s.span_id.hex() for s in spans)
            rs = ResourceSpans(resource=resource({"service.name": "checkout"}), scope_spans=[ScopeSpans(spans=spans)])
            async with http.post(url, data=traces_request(rs).SerializeToString(), headers=PROTOBUF) as resp:
                assert resp.status == 200
            await asyncio.sleep(0)

    async def attacker() -> list[int]:
        statuses = []
        for _ in range(20):
            async with http.post(url, data=poisoned_request(), headers=PROTOBUF) as resp:
                statuses.append(resp.status)
                if resp.status == 400:
                    status = status_pb2.Status.FromString(await resp.read())
                    assert "resource 0: not valid protobuf" in status.message
        return statuses

    _, statuses = await asyncio.gather(well_formed_client(), attacker())
    assert statuses == [400] * 20
    await wait_until(lambda: emulator.received.span_count(project_id) >= len(sent), what="the other client's spans")
    received = [span.span_id for span in emulator.received.spans(project_id)]
    assert sorted(received) == sorted(sent)
    assert emulator.received.invalid(project_id) == 0
    assert metric_value(forwarder, "sentryroute_rejected_requests_total", {"code": "400"}) == 20


async def test_a_bad_resource_beside_good_ones_is_a_partial_success(checkout, emulator, http):
    forwarder, project_id = checkout
    good = ResourceSpans(resource=resource({"service.name": "checkout"}), scope_spans=[ScopeSpans(spans=[good_span()])])
    body = traces_request(good).SerializeToString() + corrupt_variants()["bad-utf8-span-name"]
    url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
    async with http.post(url, data=body, headers=PROTOBUF) as resp:
        assert resp.status == 200
        answer = ExportTraceServiceResponse.FromString(await resp.read())
    assert answer.partial_success.rejected_spans == 1
    assert "invalid: 1" in answer.partial_success.error_message
    reason = "resource 1: not valid protobuf (Span.name: string field is not valid UTF-8)"
    assert reason in answer.partial_success.error_message
    await wait_until(lambda: emulator.received.span_count(project_id) == 1, what="the good span")
    assert metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "traces", "reason": "invalid"}) == 1


async def test_grpc_rejects_a_poisoned_request_and_delivers_the_rest(checkout, emulator):
    forwarder, project_id = checkout
    async with grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda body: body,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await export(poisoned_request())
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        spans = [good_span() for _ in range(3)]
        rs = ResourceSpans(resource=resource({"service.name": "checkout"}), scope_spans=[ScopeSpans(spans=spans)])
        await stub.Export(ExportTraceServiceRequest(resource_spans=[rs]))
    await wait_until(lambda: emulator.received.span_count(project_id) == 3, what="the good spans")
    assert emulator.received.invalid(project_id) == 0


async def test_logs_with_a_bad_record_beside_good_ones(checkout, emulator, http):
    forwarder, project_id = checkout
    good = ResourceLogs(
        resource=resource({"service.name": "checkout"}),
        scope_logs=[ScopeLogs(log_records=[LogRecord(body=AnyValue(string_value="fine"))])],
    )
    bad = ResourceLogs(
        resource=resource({"service.name": "checkout"}),
        scope_logs=[ScopeLogs(log_records=[LogRecord(attributes=[KeyValue(key="k", value=deep_value(10))])] * 2)],
    ).SerializeToString()
    bad = bad.replace(b"leaf", b"le\xffa")  # invalid UTF-8 in a deep attribute
    body = logs_request(good).SerializeToString() + field(1, bad)
    url = f"http://127.0.0.1:{forwarder.http_port}/v1/logs"
    async with http.post(url, data=body, headers=PROTOBUF) as resp:
        assert resp.status == 200
        answer = ExportLogsServiceResponse.FromString(await resp.read())
    assert answer.partial_success.rejected_log_records == 2
    await wait_until(lambda: emulator.received.log_count(project_id) == 1, what="the good log record")
    assert emulator.received.invalid(project_id) == 0


def test_a_record_at_the_depth_limit_is_judged_at_its_depth_in_a_batch():
    """Found by `make fuzz`: parsed alone as the root, a record gets one more level than it has in a batch."""
    good = traces_request(resource_spans("orders")).SerializeToString()
    for levels in range(30, 60):
        span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).SerializeToString()
        value = deep_value(levels).SerializeToString()
        span += field(9, field(1, b"k") + field(2, value))
        record_body = field(1, resource({"service.name": "checkout"}).SerializeToString()) + field(2, field(2, span))
        try:
            ExportTraceServiceRequest.FromString(field(1, record_body))
        except DecodeError:
            ResourceSpans.FromString(record_body)  # as the root it still parses: the boundary case
            break
    else:
        pytest.fail("no nesting found that a request rejects")
    validation = validate_request(Signal.TRACES, good + field(1, record_body) + good)
    assert [r.index for r in validation.rejected] == [1]
    assert len(validation.records) == 2


# -- a known field with the wrong wire type (prost refuses the request; upb would let it into a batch) --------

#: One bad resource record per case (built by construction in test_wirecheck.py): signal, record, field named.
WRONG_WIRE_TYPE_RECORDS = {
    "span-name": ("traces", "span-name-as-varint", "Span.name"),
    "nested-any-value": ("traces", "array-item-string-as-varint", "AnyValue.string_value"),
    "event-name": ("traces", "event-name-as-varint", "Event.name"),
    "log-body": ("logs", "log-body-string-as-varint", "AnyValue.string_value"),
}


def checkout_request(signal: Signal, names: list[str]) -> tuple[bytes, list[str]]:
    """A one-resource request of service `checkout`: spans named `names`, or log lines `names`; and what the
    emulator will show of each (span ids, or the lines)."""
    checkout = resource({"service.name": "checkout"})
    if signal is Signal.TRACES:
        spans = [good_span(name) for name in names]
        rs = ResourceSpans(resource=checkout, scope_spans=[ScopeSpans(spans=spans)])
        return traces_request(rs).SerializeToString(), [span.span_id.hex() for span in spans]
    records = [LogRecord(body=AnyValue(string_value=name)) for name in names]
    rl = ResourceLogs(resource=checkout, scope_logs=[ScopeLogs(log_records=records)])
    return logs_request(rl).SerializeToString(), list(names)


def delivered(emulator: SentryEmulator, signal: Signal, project_id: str) -> list[str]:
    if signal is Signal.TRACES:
        return [span.span_id for span in emulator.received.spans(project_id)]
    return [log.body for log in emulator.received.logs(project_id)]


@pytest.mark.parametrize("case", sorted(WRONG_WIRE_TYPE_RECORDS))
async def test_a_wrong_wire_type_costs_another_client_nothing(case, checkout, emulator, http):
    """The bad record is named in partial_success and counted as invalid; the other client's data, sent at the
    same time to the same project, arrives in full; Sentry (the emulator, as strict as prost) decodes every
    batch it gets. Sent to the emulator directly, the same request is answered 202 and dropped whole."""
    signal_name, built, field_name = WRONG_WIRE_TYPE_RECORDS[case]
    forwarder, project_id = checkout
    signal = Signal(signal_name)
    url = f"http://127.0.0.1:{forwarder.http_port}/v1/{signal.value}"
    answer_type = ExportTraceServiceResponse if signal is Signal.TRACES else ExportLogsServiceResponse
    sent: list[str] = []

    async def well_formed_client() -> None:
        for round_ in range(10):
            body, shown = checkout_request(signal, [f"client {round_}-{i}" for i in range(5)])
            sent.extend(shown)
            async with http.post(url, data=body, headers=PROTOBUF) as resp:
                assert resp.status == 200
            await asyncio.sleep(0)

    async def sender_of_bad_records() -> list[str]:
        messages = []
        for round_ in range(10):
            good, shown = checkout_request(signal, [f"sender's good {round_}"])
            sent.extend(shown)
            async with http.post(url, data=good + WRONG_WIRE_TYPES[built][1], headers=PROTOBUF) as resp:
                assert resp.status == 200
                messages.append(answer_type.FromString(await resp.read()).partial_success.error_message)
        return messages

    _, messages = await asyncio.gather(well_formed_client(), sender_of_bad_records())
    for message in messages:
        assert "(invalid: 1)" in message and f"resource 1: not valid protobuf ({field_name}" in message, message
    await wait_until(lambda: len(delivered(emulator, signal, project_id)) >= len(sent), what="every good item")
    assert sorted(delivered(emulator, signal, project_id)) == sorted(sent)
    assert emulator.received.invalid(project_id) == 0
    dropped = {"signal": signal.value, "reason": "invalid"}
    assert metric_value(forwarder, "sentryroute_dropped_items_total", dropped) == 10

    # The same request straight to the emulator: 202, then dropped whole (its good record too), as Relay does.
    key = next(k for k in emulator.state.keys.values() if k.project_id == project_id and k.is_active)
    good, _ = checkout_request(signal, ["never seen"])
    headers = {**PROTOBUF, "X-Sentry-Auth": f"sentry sentry_key={key.public}"}
    async with http.post(
        emulator.otlp_url(project_id, signal.value), data=good + WRONG_WIRE_TYPES[built][1], headers=headers
    ) as resp:
        assert resp.status == 202
    assert emulator.received.invalid(project_id) == 1
    assert sorted(delivered(emulator, signal, project_id)) == sorted(sent)

"""Wire-level splitting: message-equal to decoding and regrouping, exact counts, malformed bodies rejected."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sentryroute_forwarder.model import Destination, Signal
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.split import split_request
from sentryroute_forwarder.route.wire import MalformedPayload, parse_records, records

from tests.forwarder.support import logs_request, resource_logs, resource_spans, routes_table, traces_request

TABLE = routes_table(
    [("orders", "orders"), ("products", "products"), ("checkout", "shop-checkout", "shop")],
    fallbacks=[("bank", "bank-catch-all")],
    pending=["new-service"],
    refused=["unknown_service:python"],
)


def reference_split(request, resources_field, router):
    """Decode everything, decide per resource with the router, regroup into requests of the same type."""
    groups: dict[tuple[Destination, str | None], list] = {}
    for rs in getattr(request, resources_field):
        attributes: dict[str, object] = {}
        for kv in rs.resource.attributes:
            kind = kv.value.WhichOneof("value")
            attributes.setdefault(kv.key, getattr(kv.value, kind) if kind else None)
        destination, _, value = router.decide(attributes)
        groups.setdefault((destination, value), []).append(rs)
    return {key: type(request)(**{resources_field: items}) for key, items in groups.items()}


def test_traces_split_is_message_equal_to_decode_and_regroup():
    rng = random.Random(7)
    services = ["orders", "products", "checkout", "nobody", None, "new-service", "unknown_service:python"]
    request = traces_request(
        *[
            resource_spans(
                rng.choice(services),
                namespace=rng.choice([None, "shop", "bank"]),
                spans=rng.randrange(0, 6),
                scopes=rng.randrange(1, 3),
                tag=str(i),
            )
            for i in range(60)
        ]
    )
    router = Router(TABLE)
    result = split_request(Signal.TRACES, request.SerializeToString(), router)
    reference = reference_split(request, "resource_spans", router)

    kept = {key: req for key, req in reference.items() if key[0].kind != "drop"}
    assert [(p.destination, p.value) for p in result.parts] == list(kept)
    for part in result.parts:
        decoded = ExportTraceServiceRequest.FromString(part.payload)
        assert decoded == kept[(part.destination, part.value)]
        assert part.items == sum(len(ss.spans) for rs in decoded.resource_spans for ss in rs.scope_spans)
        assert part.resources == len(decoded.resource_spans)
        assert part.signal is Signal.TRACES
    expected_total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    assert result.items == expected_total
    assert sum(p.items for p in result.parts) + result.rejected == expected_total
    dropped: dict[str, int] = {}
    for (destination, _), req in reference.items():
        if destination.kind == "drop":
            count = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
            dropped[destination.reason] = dropped.get(destination.reason, 0) + count
    assert result.dropped == dropped


def test_logs_split_by_service_and_namespace():
    request = logs_request(
        resource_logs("orders", records=2, tag="a"),
        resource_logs("checkout", namespace="shop", records=3),
        resource_logs("orders", records=4, tag="b"),
        resource_logs("checkout", namespace="bank", records=5),
        resource_logs("nobody", records=6),
        resource_logs("new-service", records=1),
    )
    result = split_request(Signal.LOGS, request.SerializeToString(), Router(TABLE))
    summary = [
        (p.destination.kind, p.destination.project or p.destination.reason, p.value, p.items) for p in result.parts
    ]
    assert summary == [
        ("project", "org/orders", "orders", 6),
        ("project", "org/shop-checkout", "checkout", 3),
        ("project", "org/bank-catch-all", "checkout", 5),
        ("hold", "pending", "new-service", 1),
    ]
    orders = ExportLogsServiceRequest.FromString(result.parts[0].payload)
    assert [rl.scope_logs[0].log_records[0].body.string_value for rl in orders.resource_logs] == [
        "aorders line 0",
        "borders line 0",
    ]
    assert result.dropped == {"unrouted": 6}
    assert [(d.reason, d.value, d.items) for d in result.dropped_values] == [("unrouted", "nobody", 6)]
    assert result.items == 21


def test_single_destination_keeps_the_body_and_unknown_top_level_fields_are_skipped():
    body = traces_request(resource_spans("orders"), resource_spans("orders")).SerializeToString()
    result = split_request(Signal.TRACES, body, Router(TABLE))
    assert len(result.parts) == 1 and result.parts[0].payload == body

    unknown = bytes([(7 << 3) | 0, 5]) + bytes([(9 << 3) | 2, 2]) + b"hi" + bytes([(3 << 3) | 5]) + b"abcd"
    result = split_request(Signal.TRACES, unknown + body, Router(TABLE))
    assert [p.payload for p in result.parts] == [body]


def test_empty_request_has_no_parts():
    result = split_request(Signal.TRACES, b"", Router(TABLE))
    assert (result.parts, result.dropped, result.items) == ([], {}, 0)


def test_records_are_slices_that_rejoin_to_the_request():
    request = traces_request(*(resource_spans(f"s{i}", spans=i) for i in range(5)))
    body = request.SerializeToString()
    slices = records(body)
    assert len(slices) == 5
    assert b"".join(slices) == body
    assert ExportTraceServiceRequest.FromString(b"".join(slices[1:3])) == traces_request(*request.resource_spans[1:3])


def test_attributes_are_filtered_and_non_strings_kept():
    body = traces_request(
        resource_spans("orders", extra={"k8s.pod.name": "p", "retries": 3}, spans=4, scopes=2)
    ).SerializeToString()
    (record,) = parse_records(body, keys={"service.name", "retries"})
    assert record.attributes == {"service.name": "orders", "retries": 3}
    assert record.items == 8


VALID = traces_request(resource_spans("orders")).SerializeToString()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (VALID[:-3], "runs past the end"),
        (b"\x0a", "truncated varint"),
        (b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "overlong varint"),
        (b"\x08\x01", "field 1 must be length-delimited"),
        (b"\x00\x01", "field number 0"),
        (b"\x13\x0c", "unsupported wire type"),
        (b"\x11\x00", "runs past the end"),
        (b"\x0a\x03\x0a\x05\x00", "resource record 0 is not valid protobuf"),
        (VALID + b"\x0a\x02\x12\x09", "resource record 1 is not valid protobuf"),
        (b"not a protobuf at all", "wire type"),
    ],
)
def test_malformed_bodies_raise_with_a_reason(body, reason):
    with pytest.raises(MalformedPayload, match=reason):
        split_request(Signal.TRACES, body, Router(TABLE))
    assert issubclass(MalformedPayload, ValueError)


def test_invalid_utf8_in_resource_attributes_is_malformed():
    request = traces_request(resource_spans("orders"))
    body = request.SerializeToString().replace(b"orders", b"\xff\xfe\xfdders")
    with pytest.raises(MalformedPayload):
        split_request(Signal.TRACES, body, Router(TABLE))

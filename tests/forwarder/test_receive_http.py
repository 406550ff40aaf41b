"""OTLP/HTTP receiving over real sockets: protobuf, OTLP/JSON with hex ids, gzip/deflate, logs, metrics."""

from __future__ import annotations

import gzip
import json
import zlib

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from sentryroute_forwarder.model import Destination, Signal

from tests.forwarder.support import logs_request, metric_value, resource, resource_logs, resource_spans, traces_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def url(forwarder, path: str) -> str:
    return f"http://127.0.0.1:{forwarder.http_port}{path}"


async def test_protobuf_traces_are_split_and_offered(forwarder, fake_pipeline, http):
    request = traces_request(
        resource_spans("orders", spans=2), resource_spans("products", spans=3), resource_spans("orders", spans=1)
    )
    async with http.post(url(forwarder, "/v1/traces"), data=request.SerializeToString(), headers=PROTOBUF) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-protobuf"
        assert "Content-Encoding" not in resp.headers
        assert ExportTraceServiceResponse.FromString(await resp.read()) == ExportTraceServiceResponse()
    assert [(p.destination.project, p.items, p.resources) for p in fake_pipeline.parts] == [
        ("org/orders", 3, 2),
        ("org/products", 3, 1),
    ]
    assert all(p.signal is Signal.TRACES for p in fake_pipeline.parts)
    assert metric_value(forwarder, "sentryroute_received_items_total", {"signal": "traces"}) == 6


async def test_unrouted_and_refused_items_are_reported_in_partial_success(forwarder, fake_pipeline, http):
    request = traces_request(
        resource_spans("orders", spans=2),
        resource_spans("nobody", spans=3),
        resource_spans("unknown_service:python", spans=4),
        resource_spans("new-service", spans=5),
    )
    async with http.post(url(forwarder, "/v1/traces"), data=request.SerializeToString(), headers=PROTOBUF) as resp:
        assert resp.status == 200
        response = ExportTraceServiceResponse.FromString(await resp.read())
    assert response.partial_success.rejected_spans == 7
    assert "refused: 4" in response.partial_success.error_message
    assert "unrouted: 3" in response.partial_success.error_message
    assert [p.destination for p in fake_pipeline.parts] == [
        Destination("project", project="org/orders"),
        Destination("hold", reason="pending"),
    ]
    labels = {"signal": "traces", "reason": "unrouted"}
    assert metric_value(forwarder, "sentryroute_dropped_items_total", labels) == 3
    labels["reason"] = "refused"
    assert metric_value(forwarder, "sentryroute_dropped_items_total", labels) == 4


async def test_json_with_hex_ids_is_converted_to_protobuf(forwarder, fake_pipeline, http):
    trace_id, span_id, parent = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "orders"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": parent,
                                "name": "GET /orders",
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000500000000",
                                "links": [{"traceId": trace_id, "spanId": parent}],
                                "unknownFieldFromTheFuture": True,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    async with http.post(url(forwarder, "/v1/traces"), json=body) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == {}
    (part,) = fake_pipeline.parts
    span = ExportTraceServiceRequest.FromString(part.payload).resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex()) == (trace_id, span_id, parent)
    assert (span.links[0].trace_id.hex(), span.links[0].span_id.hex()) == (trace_id, parent)
    assert span.end_time_unix_nano == 1_700_000_000_500_000_000


async def test_json_logs_with_partial_success_answer_in_json(forwarder, fake_pipeline, http):
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1",
                                "body": {"stringValue": "hi"},
                                "traceId": "ab" * 16,
                                "spanId": "cd" * 8,
                            }
                        ]
                    }
                ],
            }
            for service in ("products", "nobody")
        ]
    }
    async with http.post(
        url(forwarder, "/v1/logs"), data=json.dumps(body), headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["partialSuccess"]["rejectedLogRecords"] in ("1", 1)
    assert "unrouted" in answer["partialSuccess"]["errorMessage"]
    (part,) = fake_pipeline.parts
    record = ExportLogsServiceRequest.FromString(part.payload).resource_logs[0].scope_logs[0].log_records[0]
    assert (record.trace_id, record.span_id) == (b"\xab" * 16, b"\xcd" * 8)
    assert part.signal is Signal.LOGS


async def test_gzip_and_deflate_bodies_are_inflated(forwarder, fake_pipeline, http):
    body = logs_request(resource_logs("orders", records=4)).SerializeToString()
    for encoding, data in [("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)), ("identity", body)]:
        headers = {**PROTOBUF, "Content-Encoding": encoding}
        async with http.post(url(forwarder, "/v1/logs"), data=data, headers=headers) as resp:
            assert resp.status == 200, encoding
            assert ExportLogsServiceResponse.FromString(await resp.read()) == ExportLogsServiceResponse()
    assert [p.payload for p in fake_pipeline.parts] == [body, body, body]


async def test_gzip_bodies_inflating_past_the_event_loops_share_are_inflated_by_a_worker(
    forwarder, fake_pipeline, http
):
    """A small compressed body is inflated on the event loop only up to 1 MiB of output; past that, it is
    inflated again on a decode worker, and accepted all the same."""
    small = logs_request(resource_logs("orders", records=4)).SerializeToString()
    large = logs_request(resource_logs("orders", records=1, extra={"padding": "x" * 3_000_000})).SerializeToString()
    for body in (small, large, small):
        data = gzip.compress(body)
        assert len(data) < 64 * 1024
        async with http.post(
            url(forwarder, "/v1/logs"), data=data, headers={**PROTOBUF, "Content-Encoding": "gzip"}
        ) as resp:
            assert resp.status == 200
    assert [p.payload for p in fake_pipeline.parts] == [small, large, small]


def metrics_request() -> ExportMetricsServiceRequest:
    points = [NumberDataPoint(as_int=i) for i in range(3)]
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=resource({"service.name": "orders"}),
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(name="g", gauge=Gauge(data_points=points)),
                            Metric(name="s", sum=Sum(data_points=points[:2])),
                            Metric(name="h", histogram=Histogram(data_points=[HistogramDataPoint(count=1)])),
                        ]
                    )
                ],
            )
        ]
    )


async def test_metrics_succeed_with_every_data_point_rejected(forwarder, fake_pipeline, http):
    async with http.post(
        url(forwarder, "/v1/metrics"), data=metrics_request().SerializeToString(), headers=PROTOBUF
    ) as resp:
        assert resp.status == 200
        response = ExportMetricsServiceResponse.FromString(await resp.read())
    assert response.partial_success.rejected_data_points == 6
    assert "Sentry does not ingest OTLP metrics" in response.partial_success.error_message

    body = {
        "resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "x", "sum": {"dataPoints": [{"asInt": "1"}]}}]}]}]
    }
    async with http.post(url(forwarder, "/v1/metrics"), json=body) as resp:
        assert resp.status == 200
        assert (await resp.json())["partialSuccess"]["rejectedDataPoints"] in ("1", 1)
    assert fake_pipeline.parts == []
    labels = {"signal": "metrics", "reason": "metrics_unsupported"}
    assert metric_value(forwarder, "sentryroute_dropped_items_total", labels) == 7


async def test_empty_request_is_a_success(forwarder, fake_pipeline, http):
    async with http.post(url(forwarder, "/v1/traces"), data=b"", headers=PROTOBUF) as resp:
        assert resp.status == 200
    assert fake_pipeline.parts == []

"""OTLP/gRPC receiving over real sockets with the generated OpenTelemetry stubs."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.model import Signal

from tests.forwarder.support import (
    local_settings,
    logs_request,
    metric_value,
    resource_logs,
    resource_spans,
    traces_request,
)
from tests.forwarder.test_receive_http import metrics_request


@pytest.fixture
async def channel(forwarder):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}") as channel:
        yield channel


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    """The RetryInfo delay in the status details (what OTLP exporters read to decide to retry)."""
    metadata: Any = error.trailing_metadata()  # a grpc.aio.Metadata (the stubs say a tuple)
    raw = metadata["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert status.code == error.code().value[0]
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


async def test_traces_are_routed(forwarder, fake_pipeline, channel):
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request = traces_request(resource_spans("orders", spans=2), resource_spans("nobody", spans=3))
    response = await stub.Export(request, timeout=10)
    assert response.partial_success.rejected_spans == 3
    assert "unrouted: 3" in response.partial_success.error_message
    (part,) = fake_pipeline.parts
    assert (part.destination.project, part.items, part.signal) == ("org/orders", 2, Signal.TRACES)
    assert metric_value(forwarder, "sentryroute_received_items_total", {"signal": "traces"}) == 5


async def test_gzip_compressed_logs_are_routed(forwarder, fake_pipeline, channel):
    stub = logs_service_pb2_grpc.LogsServiceStub(channel)
    request = logs_request(resource_logs("products", records=4))
    response = await stub.Export(request, timeout=10, compression=grpc.Compression.Gzip)
    assert not response.HasField("partial_success")
    (part,) = fake_pipeline.parts
    assert (part.destination.project, part.items, part.signal) == ("org/products", 4, Signal.LOGS)
    assert part.payload == request.SerializeToString()


async def test_metrics_are_answered_with_every_point_rejected(forwarder, channel):
    stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
    response = await stub.Export(metrics_request(), timeout=10)
    assert response.partial_success.rejected_data_points == 6
    assert "Sentry does not ingest OTLP metrics" in response.partial_success.error_message


async def test_malformed_request_is_invalid_argument(forwarder, channel):
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=None,
        response_deserializer=ExportTraceServiceResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export(b"\x0a\x05abc", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ExportTraceServiceRequest" in (caught.value.details() or "")


async def test_queue_full_is_resource_exhausted_with_retry_info(forwarder, fake_pipeline, channel):
    fake_pipeline.room = False
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Export(traces_request(resource_spans("orders")), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 1.0 <= retry_delay(caught.value) <= 1.5  # --retry-after, plus up to 50 % jitter


async def test_no_table_is_unavailable_with_retry_info(tmp_path, fake_pipeline):
    settings = local_settings(tmp_path / "missing.json", retry_after=2.5)
    async with (
        Forwarder(settings, pipeline=fake_pipeline) as forwarder,
        grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}") as channel,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Export(traces_request(resource_spans("orders")), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert 2.5 <= retry_delay(caught.value) <= 3.75
    assert metric_value(forwarder, "sentryroute_rejected_requests_total", {"code": "UNAVAILABLE"}) == 1


async def test_oversized_message_is_rejected(routes_path, fake_pipeline):
    settings = local_settings(routes_path, max_request_bytes=4096)
    async with (
        Forwarder(settings, pipeline=fake_pipeline) as forwarder,
        grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}") as channel,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Export(traces_request(resource_spans("orders", spans=200)), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert fake_pipeline.parts == []


async def test_compressed_message_inflating_past_the_limit_is_rejected(routes_path, fake_pipeline):
    settings = local_settings(routes_path, max_request_bytes=64 * 1024)
    bomb = traces_request(resource_spans("orders", extra={"padding": "x" * (1024 * 1024)}))
    async with (
        Forwarder(settings, pipeline=fake_pipeline) as forwarder,
        grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}") as channel,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Export(bomb, timeout=10, compression=grpc.Compression.Gzip)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert fake_pipeline.parts == []

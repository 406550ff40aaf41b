"""End to end: OpenTelemetry SDK exporters (http/protobuf and gRPC) and an otelcol-style client → forwarder
(real queue and exporter) → the Sentry emulator. Every item of a routed service arrives exactly once, at its
project, with its project's key; unrouted services are counted as dropped."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from sentryroute_forwarder.app import Forwarder

from tests.forwarder.support import (
    emulator_projects,
    emulator_table,
    local_settings,
    metric_value,
    resource_spans,
    traces_request,
    wait_until,
    write_table,
)

ROUTED = ("orders", "products", "checkout")
STRAY = "stray-service"
SPANS_PER_SERVICE = 7
LOGS_PER_SERVICE = 5


@pytest.fixture
async def routed(emulator, tmp_path):
    """Emulator projects for ROUTED services, and a forwarder (real pipeline) routing to them."""
    services = emulator_projects(emulator, {service: f"{service}-project" for service in ROUTED})
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    settings = local_settings(path, batch_timeout=0.05, retry_initial=0.05, export_timeout=10.0)
    async with Forwarder(settings) as forwarder:
        yield forwarder, services


def send_with_sdk(*, service: str, span_exporter: SpanExporter, log_exporter: LogRecordExporter) -> None:
    """What an instrumented service does: spans and log records under its resource, flushed at exit."""
    resource = Resource.create({"service.name": service, "k8s.namespace.name": "shop"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    tracer = tracer_provider.get_tracer("e2e")
    logger = logger_provider.get_logger("e2e")
    with tracer.start_as_current_span(f"{service}-root"):
        for i in range(SPANS_PER_SERVICE - 1):
            with tracer.start_as_current_span(f"{service}-child-{i}"):
                pass
    for i in range(LOGS_PER_SERVICE):
        logger.emit(body=f"{service} log {i}", severity_text="INFO")
    assert tracer_provider.force_flush(10_000)
    assert logger_provider.force_flush(10_000)
    tracer_provider.shutdown()
    logger_provider.shutdown()


def http_exporters(port: int) -> tuple[SpanExporter, LogRecordExporter]:
    base = f"http://127.0.0.1:{port}"
    return HttpSpanExporter(endpoint=f"{base}/v1/traces"), HttpLogExporter(endpoint=f"{base}/v1/logs")


def grpc_exporters(port: int) -> tuple[SpanExporter, LogRecordExporter]:
    endpoint = f"127.0.0.1:{port}"
    return GrpcSpanExporter(endpoint=endpoint, insecure=True), GrpcLogExporter(endpoint=endpoint, insecure=True)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_sdk_exporters_reach_exactly_their_projects(routed, emulator, protocol):
    forwarder, services = routed
    for service in (*ROUTED, STRAY):
        port = forwarder.http_port if protocol == "http/protobuf" else forwarder.grpc_port
        spans, logs = http_exporters(port) if protocol == "http/protobuf" else grpc_exporters(port)
        await asyncio.to_thread(send_with_sdk, service=service, span_exporter=spans, log_exporter=logs)

    def delivered() -> bool:
        return all(
            len(emulator.received.spans(p.id)) >= SPANS_PER_SERVICE
            and len(emulator.received.logs(p.id)) >= LOGS_PER_SERVICE
            for p, _ in services.values()
        )

    await wait_until(delivered, within=30, what="every routed span and log at the emulator")
    await asyncio.sleep(0.3)  # nothing more may arrive (no duplicates)
    for service, (project, key) in services.items():
        spans = emulator.received.spans(project.id)
        assert sorted(s.name for s in spans) == sorted(
            [f"{service}-root"] + [f"{service}-child-{i}" for i in range(SPANS_PER_SERVICE - 1)]
        )
        assert {s.service_name for s in spans} == {service}
        assert len({s.trace_id for s in spans}) == 1
        logs = emulator.received.logs(project.id)
        assert sorted(entry.body for entry in logs) == sorted(f"{service} log {i}" for i in range(LOGS_PER_SERVICE))
        requests = emulator.received.requests(project.id)
        assert requests and {r.public_key for r in requests} == {key.public}
        assert {r.content_encoding for r in requests} == {"gzip"}
    assert (
        metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "traces", "reason": "unrouted"})
        == SPANS_PER_SERVICE
    )
    assert (
        metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "logs", "reason": "unrouted"})
        == LOGS_PER_SERVICE
    )
    routed_spans = SPANS_PER_SERVICE * len(ROUTED)
    assert (
        metric_value(forwarder, "sentryroute_received_items_total", {"signal": "traces"})
        == routed_spans + SPANS_PER_SERVICE
    )


async def test_otelcol_style_gzip_protobuf_client(routed, emulator):
    """An OpenTelemetry Collector's otlphttp exporter: one request mixing services, protobuf, gzip."""
    forwarder, services = routed
    request = traces_request(*(resource_spans(service, spans=4, tag="col-") for service in (*ROUTED, STRAY, "orders")))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        async with http.post(url, data=gzip.compress(request.SerializeToString()), headers=headers) as resp:
            assert resp.status == 200
    orders, _ = services["orders"]
    await wait_until(lambda: len(emulator.received.spans(orders.id)) == 8, within=30, what="the orders spans")
    products, checkout = services["products"][0], services["checkout"][0]

    def others_delivered() -> bool:
        return len(emulator.received.spans(products.id)) == len(emulator.received.spans(checkout.id)) == 4

    await wait_until(others_delivered, within=30, what="the products and checkout spans")
    assert metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "traces", "reason": "unrouted"}) == 4

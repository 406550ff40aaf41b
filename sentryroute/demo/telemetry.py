"""Send traces and logs the way an instrumented service does: the real OpenTelemetry SDK and its OTLP exporters."""

from __future__ import annotations

import logging

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from sentryroute.demo.scenario import DemoService

# The SDK logs export failures at WARNING with full tracebacks; the demo reports outcomes itself.
logging.getLogger("opentelemetry").setLevel(logging.ERROR)


def send(service: DemoService, *, http_endpoint: str, grpc_endpoint: str, spans: int, logs: int) -> None:
    """Emit `spans` spans (a root and children) and `logs` log records for one service, then flush."""
    resource = Resource.create({"service.name": service.name, **service.attributes})
    if service.protocol == "grpc":
        span_exporter: HttpSpanExporter | GrpcSpanExporter = GrpcSpanExporter(endpoint=grpc_endpoint, insecure=True)
        log_exporter: HttpLogExporter | GrpcLogExporter = GrpcLogExporter(endpoint=grpc_endpoint, insecure=True)
    else:
        span_exporter = HttpSpanExporter(endpoint=f"{http_endpoint}/v1/traces")
        log_exporter = HttpLogExporter(endpoint=f"{http_endpoint}/v1/logs")

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("sentryroute.demo")
    with tracer.start_as_current_span(f"{service.name} request"):
        for i in range(spans - 1):
            with tracer.start_as_current_span(f"step {i}"):
                pass
    tracer_provider.shutdown()

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    otel_logger = logger_provider.get_logger("sentryroute.demo")
    for i in range(logs):
        otel_logger.emit(
            body=f"{service.name} did thing {i}", severity_number=SeverityNumber.INFO, severity_text="INFO"
        )
    logger_provider.shutdown()

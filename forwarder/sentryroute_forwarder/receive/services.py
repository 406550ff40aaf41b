"""The three OTLP export services as the receivers see them: paths, gRPC names, messages, partial-success field."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.receive.intake import Outcome

__all__ = ["LOGS", "METRICS", "SERVICES", "TRACES", "OtlpService"]


@dataclass(frozen=True, slots=True)
class OtlpService:
    http_path: str
    grpc_service: str
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str  # the counter inside Export*PartialSuccess
    signal: Signal | None  # None: metrics, which are answered but never routed

    def response(self, outcome: Outcome) -> Message:
        """The Export*ServiceResponse for `outcome`: empty on full success, else `partial_success` set."""
        response = self.response_type()
        if outcome.rejected or outcome.message:
            partial = response.partial_success  # type: ignore[attr-defined]
            setattr(partial, self.rejected_field, outcome.rejected)
            partial.error_message = outcome.message
        return response


TRACES = OtlpService(
    http_path="/v1/traces",
    grpc_service="opentelemetry.proto.collector.trace.v1.TraceService",
    request_type=trace_service_pb2.ExportTraceServiceRequest,
    response_type=trace_service_pb2.ExportTraceServiceResponse,
    rejected_field="rejected_spans",
    signal=Signal.TRACES,
)
LOGS = OtlpService(
    http_path="/v1/logs",
    grpc_service="opentelemetry.proto.collector.logs.v1.LogsService",
    request_type=logs_service_pb2.ExportLogsServiceRequest,
    response_type=logs_service_pb2.ExportLogsServiceResponse,
    rejected_field="rejected_log_records",
    signal=Signal.LOGS,
)
METRICS = OtlpService(
    http_path="/v1/metrics",
    grpc_service="opentelemetry.proto.collector.metrics.v1.MetricsService",
    request_type=metrics_service_pb2.ExportMetricsServiceRequest,
    response_type=metrics_service_pb2.ExportMetricsServiceResponse,
    rejected_field="rejected_data_points",
    signal=None,
)
SERVICES = (TRACES, LOGS, METRICS)

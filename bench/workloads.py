"""The shapes of traffic the benchmark sends, their request bodies and the routes table that routes them.

A shape is one protocol (OTLP/HTTP or OTLP/gRPC), one signal, and requests of `services` resources x
`items` spans or log records; `spread` services rotate over requests (the 1,000-projects shape: each request
carries one of 1,000 services). Spans and log records carry 11 attributes each, like the reference workload
of the README (10 x 50 spans is about 240 KB).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from isal import igzip
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from sentryroute.routes import RoutesTable

__all__ = ["SHAPES", "Shape", "build_table", "grpc_frame"]

ATTRIBUTES_PER_ITEM = 11


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    protocol: str  # "http" | "grpc"
    signal: str  # "traces" | "logs"
    services: int  # resources per request
    items: int  # spans or log records per resource
    gzip: bool = False  # HTTP request bodies gzip-compressed
    spread: int = 0  # >0: each request carries one resource of one of `spread` services, in rotation
    target: float | None = None  # sentryroute/rotel throughput ratio the issue asks for
    what: str = ""

    @property
    def items_per_request(self) -> int:
        return self.services * self.items

    @property
    def routed_services(self) -> int:
        return self.spread or self.services

    @property
    def path(self) -> str:
        if self.protocol == "grpc":
            service = "trace.v1.TraceService" if self.signal == "traces" else "logs.v1.LogsService"
            return f"/opentelemetry.proto.collector.{service}/Export"
        return f"/v1/{self.signal}"

    def bodies(self) -> list[bytes]:
        """The request bodies as sent (gzipped or gRPC-framed as the shape says); several for `spread`."""
        if self.spread:
            raw = [build_request(self.signal, [f"svc-{s}"], self.items) for s in range(self.spread)]
        else:
            raw = [build_request(self.signal, [f"svc-{s}" for s in range(self.services)], self.items)]
        if self.protocol == "grpc":
            return [grpc_frame(body) for body in raw]
        if self.gzip:
            return [igzip.compress(body, compresslevel=1) for body in raw]
        return raw


#: Every shape `make bench` measures; those with a `target` are the issue's acceptance shapes.
SHAPES: tuple[Shape, ...] = (
    Shape("http-traces-10x50", "http", "traces", 10, 50, target=4.0, what="HTTP, 10 services x 50 spans"),
    Shape("http-logs-10x50", "http", "logs", 10, 50, target=4.0, what="HTTP logs, 10 services x 50 records"),
    Shape("http-gzip-traces-10x50", "http", "traces", 10, 50, gzip=True, target=4.0, what="HTTP gzip, 10 x 50"),
    Shape("http-traces-1x50", "http", "traces", 1, 50, target=2.0, what="HTTP, 1 service x 50 spans (SDK-sized)"),
    Shape("grpc-traces-10x50", "grpc", "traces", 10, 50, target=3.0, what="gRPC, 10 services x 50 spans"),
    Shape("grpc-traces-1x50", "grpc", "traces", 1, 50, target=1.0, what="gRPC, 1 service x 50 spans (SDK-sized)"),
    # Reported, no target.
    Shape("http-logs-1x50", "http", "logs", 1, 50, what="HTTP logs, 1 service x 50 records"),
    Shape("grpc-logs-10x50", "grpc", "logs", 10, 50, what="gRPC logs, 10 services x 50 records"),
    Shape("grpc-logs-1x50", "grpc", "logs", 1, 50, what="gRPC logs, 1 service x 50 records"),
    Shape("http-traces-1x512", "http", "traces", 1, 512, what="HTTP, 1 service x 512 spans"),
    Shape("http-traces-1000-projects", "http", "traces", 1, 50, spread=1000, what="HTTP, 1 x 50, 1,000 services"),
)


def build_request(signal: str, services: list[str], items: int) -> bytes:
    """An Export{Trace,Logs}ServiceRequest with one resource per service and `items` spans/records each."""
    request: ExportTraceServiceRequest | ExportLogsServiceRequest
    if signal == "traces":
        request = ExportTraceServiceRequest()
        for n, service in enumerate(services):
            scope = ScopeSpans(scope=InstrumentationScope(name="bench", version="1.0"))
            scope.spans.extend(_span(i) for i in range(items))
            request.resource_spans.append(ResourceSpans(resource=_resource(service, n), scope_spans=[scope]))
    else:
        request = ExportLogsServiceRequest()
        for n, service in enumerate(services):
            scope_logs = ScopeLogs(scope=InstrumentationScope(name="bench", version="1.0"))
            scope_logs.log_records.extend(_log_record(i) for i in range(items))
            request.resource_logs.append(ResourceLogs(resource=_resource(service, n), scope_logs=[scope_logs]))
    return request.SerializeToString()


def _resource(service: str, n: int) -> Resource:
    attributes = {"service.name": service, "k8s.namespace.name": "bench", "host.name": f"node-{n}"}
    return Resource(attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()])


def _attributes(i: int) -> list[KeyValue]:
    return [
        KeyValue(key=f"attribute.{a}", value=AnyValue(string_value=f"value-{a}-{i:04d}-abcdef"))
        for a in range(ATTRIBUTES_PER_ITEM)
    ]


def _span(i: int) -> Span:
    return Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        parent_span_id=os.urandom(8),
        name=f"GET /api/items/{i}",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000 + i,
        end_time_unix_nano=1_700_000_000_050_000_000 + i,
        attributes=_attributes(i),
    )


def _log_record(i: int) -> LogRecord:
    return LogRecord(
        time_unix_nano=1_700_000_000_000_000_000 + i,
        severity_number=9,
        severity_text="INFO",
        body=AnyValue(string_value=f"handled request {i} for /api/items/{i} in 12 ms"),
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        attributes=_attributes(i),
    )


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed (0), 4-byte big-endian length, the message."""
    return struct.pack(">BI", 0, len(message)) + message


def build_table(sink_port: int, services: int, *, namespace: str | None = None) -> RoutesTable:
    """A table routing `svc-0`..`svc-N` to one project each, exporting to the counting sink; the routes are
    cluster-wide, or namespaced to `namespace` (a SentryRoute of that namespace, for `--namespace-from peer`)."""
    base = f"http://127.0.0.1:{sink_port}"
    scope = {"namespace": namespace} if namespace else {}
    return RoutesTable.model_validate(
        {
            "version": 1,
            "routes": [
                {"attribute": "service.name", "value": f"svc-{s}", "project": f"bench/p{s}", **scope}
                for s in range(services)
            ],
            "projects": {
                f"bench/p{s}": {
                    "id": str(s + 1),
                    "tracesUrl": f"{base}/api/{s + 1}/integration/otlp/v1/traces/",
                    "logsUrl": f"{base}/api/{s + 1}/integration/otlp/v1/logs/",
                    "publicKey": f"{s + 1:032x}",
                }
                for s in range(services)
            },
        }
    ).with_revision()

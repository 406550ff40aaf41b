"""Builders shared by the forwarder tests: OTLP requests made with the opentelemetry-proto messages, routes tables,
forwarders on free local ports, the Sentry emulator as their upstream, polling.

Fixtures live in `conftest.py`; test modules import these plain helpers (`from tests.forwarder.support import ...`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.config import Address, ForwarderSettings
from sentryroute_forwarder.export.client import ExportClient
from sentryroute_forwarder.export.settings import ExportSettings
from sentryroute_forwarder.model import RoutedPart

from sentryroute.emulator import Key, Project, SentryEmulator
from sentryroute.routes import ProjectEndpoint, RoutesTable

AttributeValue = str | int | bool | float
#: `transports_for(forwarder)` (conftest): an HTTP session and a gRPC channel to it, closed after the test.
Transports = Callable[[Forwarder], tuple[aiohttp.ClientSession, grpc.aio.Channel]]


def _any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def resource(attributes: Mapping[str, AttributeValue]) -> Resource:
    return Resource(attributes=[KeyValue(key=k, value=_any_value(v)) for k, v in attributes.items()])


def resource_attributes(
    service: str | None, *, namespace: str | None = None, extra: Mapping[str, AttributeValue] | None = None
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    if service is not None:
        attributes["service.name"] = service
    if namespace is not None:
        attributes["k8s.namespace.name"] = namespace
    attributes.update(extra or {})
    return attributes


def resource_spans(
    service: str | None,
    *,
    namespace: str | None = None,
    spans: int = 3,
    scopes: int = 1,
    extra: Mapping[str, AttributeValue] | None = None,
    tag: str = "",
) -> ResourceSpans:
    """A ResourceSpans with `scopes` scopes of `spans` spans each; span names carry `tag` to tell them apart."""
    return ResourceSpans(
        resource=resource(resource_attributes(service, namespace=namespace, extra=extra)),
        scope_spans=[
            ScopeSpans(
                scope=InstrumentationScope(name=f"scope-{s}"),
                spans=[
                    Span(
                        trace_id=bytes([s + 1]) * 16,
                        span_id=(i + 1).to_bytes(8, "big"),
                        name=f"{tag}{service}-{s}-{i}",
                        start_time_unix_nano=1_700_000_000_000_000_000 + i,
                        end_time_unix_nano=1_700_000_000_100_000_000 + i,
                        attributes=[KeyValue(key="http.route", value=AnyValue(string_value="/x"))],
                    )
                    for i in range(spans)
                ],
            )
            for s in range(scopes)
        ],
    )


def resource_logs(
    service: str | None,
    *,
    namespace: str | None = None,
    records: int = 3,
    extra: Mapping[str, AttributeValue] | None = None,
    tag: str = "",
) -> ResourceLogs:
    return ResourceLogs(
        resource=resource(resource_attributes(service, namespace=namespace, extra=extra)),
        scope_logs=[
            ScopeLogs(
                scope=InstrumentationScope(name="scope"),
                log_records=[
                    LogRecord(
                        time_unix_nano=1_700_000_000_000_000_000 + i,
                        severity_text="INFO",
                        body=AnyValue(string_value=f"{tag}{service} line {i}"),
                    )
                    for i in range(records)
                ],
            )
        ],
    )


def traces_request(*resources: ResourceSpans) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=list(resources))


def logs_request(*resources: ResourceLogs) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(resource_logs=list(resources))


def varint(value: int) -> bytes:
    """A protobuf varint, for requests built by hand (malformed ones the messages cannot express)."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def endpoint(project_id: int, *, base_url: str = "http://127.0.0.1:9", key: str | None = None) -> ProjectEndpoint:
    return ProjectEndpoint(
        id=str(project_id),
        tracesUrl=f"{base_url}/api/{project_id}/integration/otlp/v1/traces/",
        logsUrl=f"{base_url}/api/{project_id}/integration/otlp/v1/logs/",
        publicKey=key or f"{project_id:032x}",
    )


def routes_table(
    routes: Sequence[tuple[str, str] | tuple[str, str, str | None]] = (),
    *,
    attribute: str = "service.name",
    fallbacks: Sequence[tuple[str | None, str]] = (),
    pending: Iterable[str] = (),
    refused: Iterable[str] = (),
    unrouted: str = "drop",
    base_url: str = "http://127.0.0.1:9",
) -> RoutesTable:
    """A table from (value, project[, namespace]) routes and (namespace, project) fallbacks on one attribute.

    Project names are `org/<name>`; each gets an endpoint with a distinct numeric id.
    """
    route_list = [
        {"attribute": attribute, "value": r[0], "project": f"org/{r[1]}", "namespace": r[2] if len(r) > 2 else None}
        for r in routes
    ]
    fallback_list = [{"attribute": attribute, "namespace": ns, "project": f"org/{p}"} for ns, p in fallbacks]
    names = sorted({f"org/{r[1]}" for r in routes} | {f"org/{p}" for _, p in fallbacks})
    return RoutesTable.model_validate(
        {
            "version": 1,
            "routes": route_list,
            "projects": {name: endpoint(i + 1, base_url=base_url) for i, name in enumerate(names)},
            "pending": [{"attribute": attribute, "value": v} for v in pending],
            "fallbacks": fallback_list,
            "refused": [{"attribute": attribute, "value": v, "reason": "placeholder"} for v in refused],
            "unrouted": unrouted,
        }
    ).with_revision()


# -- running forwarders --------------------------------------------------------------------------------


class FakePipeline:
    """Records what the receivers hand over; for receiver tests only (end-to-end tests use the real queue)."""

    def __init__(self) -> None:
        self.parts: list[RoutedPart] = []
        self.tables: list[RoutesTable] = []
        self.room = True
        self.closed = False

    def has_room(self, nbytes: int) -> bool:
        return self.room

    def retry_after(self, nbytes: int) -> float | None:
        return None

    def offer(self, parts: Sequence[RoutedPart], *, hold_limit: float | None = None) -> None:
        self.parts.extend(parts)

    def apply_table(self, table: RoutesTable) -> None:
        self.tables.append(table)

    async def start(self) -> None:
        pass

    async def close(self, timeout: float) -> int:  # noqa: ASYNC109 - the Pipeline signature
        self.closed = True
        return 0

    def release_answers(self) -> None:
        pass

    def held_values(self) -> list[tuple[str, str, str]]:
        return []

    def held_entries(self) -> list[tuple[str, str, str, str | None]]:
        return []


LOCAL = Address("127.0.0.1", 0)


def local_settings(routes: Path, **overrides: Any) -> ForwarderSettings:
    """Settings with every listener on a free local port and fast polling."""
    values: dict[str, Any] = {
        "routes": routes,
        "otlp_http": LOCAL,
        "otlp_grpc": LOCAL,
        "admin": LOCAL,
        "routes_poll_interval": 0.05,
        "shutdown_timeout": 5.0,
    }
    values.update(overrides)
    return ForwarderSettings(**values)


def write_table(path: Path, table: RoutesTable | str) -> None:
    """Replace `path` atomically (as an operator-written ConfigMap mount would change)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(table if isinstance(table, str) else table.to_json())
    tmp.replace(path)


async def wait_until(condition: Callable[[], object], *, within: float = 20.0, what: str = "condition") -> None:
    """Poll `condition` (a function, or a coroutine function) until it is truthy; generous bound, tests share
    two cores (and other suites load them)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def started_export_client(seconds: float) -> AsyncIterator[ExportClient]:
    """An `ExportClient` with `seconds` as its export and connect timeouts, started, and closed after the block."""
    client = ExportClient(ExportSettings(export_timeout=seconds, connect_timeout=seconds))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


DEFAULT_TABLE = routes_table(
    [("orders", "orders"), ("products", "products")], pending=["new-service"], refused=["unknown_service:python"]
)


def metric_value(forwarder: Forwarder, name: str, labels: dict[str, str] | None = None) -> float:
    value = forwarder.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


# -- the Sentry emulator as the upstream ---------------------------------------------------------------


def emulator_projects(emulator: SentryEmulator, slugs: Mapping[str, str]) -> dict[str, tuple[Project, Key]]:
    """Projects of org `acme` (team `backend`) for `service.name` → slug, each with a key named `sentryroute`."""
    emulator.state.add_org("acme")
    emulator.state.add_team("acme", "backend")
    services = {}
    for service, slug in slugs.items():
        project = emulator.state.add_project("acme", "backend", slug)
        services[service] = (project, emulator.state.add_key("acme", slug, name="sentryroute"))
    return services


def emulator_table(
    emulator: SentryEmulator,
    services: Mapping[str, tuple[Project, Key]],
    *,
    unrouted: str = "drop",
    pending: Iterable[str] = (),
) -> RoutesTable:
    """A routes table sending each `service.name` to its emulator project with the given key (and `pending`
    values held).

    URLs are the emulator's OTLP endpoints (what the operator renders from a key's `dsn.otlp_*`).
    """
    projects: dict[str, ProjectEndpoint] = {}
    routes = []
    for service, (project, key) in services.items():
        name = f"{project.org}/{project.slug}"
        projects[name] = ProjectEndpoint(
            id=project.id,
            tracesUrl=emulator.otlp_url(project.id, "traces"),
            logsUrl=emulator.otlp_url(project.id, "logs"),
            publicKey=key.public,
        )
        routes.append({"attribute": "service.name", "value": service, "project": name})
    held = [{"attribute": "service.name", "value": value} for value in pending]
    return RoutesTable.model_validate(
        {"version": 1, "routes": routes, "projects": projects, "pending": held, "unrouted": unrouted}
    ).with_revision()

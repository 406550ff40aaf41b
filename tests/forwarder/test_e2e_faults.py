"""End to end under Sentry faults: raw OTLP clients (HTTP protobuf + gzip, gRPC) → a real forwarder → the emulator.

One project answers 503 for a while, another gets a storm of 429s with `X-Sentry-Rate-Limits`, a third is
healthy, and a routes table change (a rotated key, a newly routed pending value) lands while data is queued.
Every accepted span and log record arrives exactly once, at its project (counted by span id and log body);
readiness never flips; and at the global bound clients are told to retry later, with nothing lost.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from prometheus_client.parser import text_string_to_metric_families
from sentryroute_forwarder.app import Forwarder

from sentryroute.emulator import Key, Project, SentryEmulator
from tests.forwarder.support import (
    Transports,
    emulator_projects,
    emulator_table,
    local_settings,
    metric_value,
    resource,
    wait_until,
    write_table,
)
from tests.forwarder.test_receive_grpc import retry_delay

FAILING, STORMED, HEALTHY, NEWCOMER = "checkout", "payments", "search", "newcomer"
PROTOBUF_GZIP = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
#: The metric names SPEC §6 fixes, as Prometheus exposes them (counters get `_total`).
SPEC_METRICS = {
    "sentryroute_received_items_total": "counter",
    "sentryroute_exported_items_total": "counter",
    "sentryroute_dropped_items_total": "counter",
    "sentryroute_queued_items": "gauge",
    "sentryroute_held_items": "gauge",
    "sentryroute_rate_limited_seconds_total": "counter",
    "sentryroute_export_duration_seconds": "histogram",
    "sentryroute_routes_revision_info": "gauge",
}

_ids = itertools.count(1)


def unique_spans(service: str, count: int) -> tuple[ResourceSpans, list[str]]:
    """A resource of `service` with `count` spans whose span ids are unique in this test run (and their hex)."""
    span_ids = [next(_ids).to_bytes(8, "big") for _ in range(count)]
    spans = [
        Span(
            trace_id=b"\x07" * 16,
            span_id=span_id,
            name=f"{service}-op",
            start_time_unix_nano=1_700_000_000_000_000_000,
            end_time_unix_nano=1_700_000_000_100_000_000,
        )
        for span_id in span_ids
    ]
    scope = ScopeSpans(scope=InstrumentationScope(name="e2e"), spans=spans)
    return ResourceSpans(resource=resource({"service.name": service}), scope_spans=[scope]), [i.hex() for i in span_ids]


def unique_logs(service: str, count: int) -> tuple[ResourceLogs, list[str]]:
    bodies = [f"{service} line {next(_ids)}" for _ in range(count)]
    records = [LogRecord(time_unix_nano=1_700_000_000_000_000_000, body=AnyValue(string_value=b)) for b in bodies]
    scope = ScopeLogs(scope=InstrumentationScope(name="e2e"), log_records=records)
    return ResourceLogs(resource=resource({"service.name": service}), scope_logs=[scope]), bodies


@dataclass
class Sent:
    """What the forwarder accepted, per service: span ids and log bodies (only requests answered with success)."""

    spans: dict[str, list[str]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)  # retry-later answers (the global bound)


class Client:
    """Sends every service's data in one request, alternating OTLP/HTTP (protobuf + gzip) and OTLP/gRPC."""

    def __init__(self, forwarder: Forwarder, http: aiohttp.ClientSession, channel: grpc.aio.Channel) -> None:
        self._base = f"http://127.0.0.1:{forwarder.http_port}"
        self._http = http
        self.traces = trace_service_pb2_grpc.TraceServiceStub(channel)
        self.sent = Sent()

    async def round(self, index: int, services: tuple[str, ...], *, spans: int = 4, logs: int = 2) -> None:
        """One traces request (gRPC on odd rounds), then one logs request; records what was accepted."""
        resources, span_ids = zip(*(unique_spans(s, spans) for s in services), strict=True)
        request = ExportTraceServiceRequest(resource_spans=resources)
        if index % 2:
            try:
                await self.traces.Export(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                self.sent.refusals.append(f"gRPC {error.code().name}")
                return
        elif not await self._post("/v1/traces", request.SerializeToString()):
            return
        for service, ids in zip(services, span_ids, strict=True):
            self.sent.spans.setdefault(service, []).extend(ids)
        log_resources, bodies = zip(*(unique_logs(s, logs) for s in services), strict=True)
        if not await self._post("/v1/logs", ExportLogsServiceRequest(resource_logs=log_resources).SerializeToString()):
            return
        for service, lines in zip(services, bodies, strict=True):
            self.sent.logs.setdefault(service, []).extend(lines)

    async def _post(self, path: str, body: bytes) -> bool:
        """POST protobuf + gzip like an OpenTelemetry Collector; False (and a refusal noted) unless accepted."""
        async with self._http.post(f"{self._base}{path}", data=gzip.compress(body), headers=PROTOBUF_GZIP) as resp:
            if resp.status != 200:
                self.sent.refusals.append(f"HTTP {resp.status}")
            return resp.status == 200


@pytest.fixture
def client_for(transports_for: Transports) -> Callable[[Forwarder], Awaitable[Client]]:
    """`await client_for(forwarder)`: a Client over real sockets, closed at the end of the test."""

    async def make(forwarder: Forwarder) -> Client:
        return Client(forwarder, *transports_for(forwarder))

    return make


def projects(emu: SentryEmulator, *slugs: str) -> dict[str, tuple[Project, Key]]:
    """service `<slug>-svc` → (emulator project `<slug>`, its key)."""
    return emulator_projects(emu, {f"{slug}-svc": slug for slug in slugs})


def all_arrived(emu: SentryEmulator, services: dict[str, tuple[Project, Key]], sent: Sent) -> bool:
    """At least as many items at each project as were accepted for it (then `assert_exactly_once` checks)."""
    return all(
        emu.received.span_count(project.id) >= len(sent.spans.get(service, ()))
        and emu.received.log_count(project.id) >= len(sent.logs.get(service, ()))
        for service, (project, _) in services.items()
    )


def assert_exactly_once(emu: SentryEmulator, services: dict[str, tuple[Project, Key]], sent: Sent) -> None:
    """Every accepted item at its own project, once: no loss, no duplicate, nothing foreign."""
    for service, (project, _) in services.items():
        spans = emu.received.spans(project.id)
        assert {s.service_name for s in spans} <= {service}
        counted = Counter(s.span_id for s in spans)
        duplicates = {span_id: n for span_id, n in counted.items() if n > 1}
        assert not duplicates, f"{service}: spans delivered more than once: {duplicates}"
        assert sorted(counted) == sorted(sent.spans[service]), f"{service}: spans lost or foreign"
        bodies = Counter(entry.body for entry in emu.received.logs(project.id))
        assert not {b: n for b, n in bodies.items() if n > 1}, f"{service}: log records delivered more than once"
        assert sorted(bodies) == sorted(sent.logs[service]), f"{service}: log records lost or foreign"


async def is_ready(http: aiohttp.ClientSession, forwarder: Forwarder) -> bool:
    async with http.get(f"http://127.0.0.1:{forwarder.admin_port}/readyz") as resp:
        return resp.status == 200


async def test_503s_a_429_storm_and_a_table_change_lose_and_duplicate_nothing(
    emulator: SentryEmulator, tmp_path: Path, client_for
) -> None:
    services = projects(emulator, FAILING, STORMED, HEALTHY, NEWCOMER)
    failing, stormed, healthy, newcomer = (services[f"{s}-svc"][0] for s in (FAILING, STORMED, HEALTHY, NEWCOMER))
    routed = {name: services[name] for name in (f"{FAILING}-svc", f"{STORMED}-svc", f"{HEALTHY}-svc")}
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, routed, pending=[f"{NEWCOMER}-svc"]))
    settings = local_settings(
        path, batch_timeout=0.05, retry_initial=0.05, retry_max=0.3, default_rate_limit=1.0, export_timeout=10.0
    )
    emulator.faults.fail(failing.id, status=503, seconds=1.5)
    async with Forwarder(settings) as forwarder:
        client = await client_for(forwarder)
        names = tuple(services)
        async with aiohttp.ClientSession() as admin:
            for index in range(16):
                if index % 6 == 0:  # the storm: a fresh span quota every few rounds
                    emulator.faults.rate_limit(stormed.id, seconds=0.6, categories="span", scope="project")
                if index == 8:  # while data is queued: rotate payments' key, route the pending newcomer
                    rotated = emulator.state.add_key("acme", STORMED, name="rotated")
                    services[f"{STORMED}-svc"] = (stormed, rotated)
                    write_table(path, emulator_table(emulator, services))
                    await wait_until(lambda: forwarder.loader.table.routes[-1].value == f"{NEWCOMER}-svc")
                await client.round(index, names)
                assert await is_ready(admin, forwarder), "readiness must not follow Sentry's health"
                await asyncio.sleep(0.1)
            assert client.sent.refusals == []  # far below the global bound: every request accepted
            await wait_until(
                lambda: all_arrived(emulator, services, client.sent), within=30, what="every accepted item"
            )
            assert await is_ready(admin, forwarder)
            scraped = await (await admin.get(f"http://127.0.0.1:{forwarder.admin_port}/metrics")).text()

        await asyncio.sleep(0.3)  # a late duplicate would show up now
        assert_exactly_once(emulator, services, client.sent)

        # The faults really happened, and were honoured.
        assert 503 in [r.status for r in emulator.received.requests(failing.id)]
        stormed_traces = [r for r in emulator.received.requests(stormed.id) if r.signal == "traces"]
        limited = [r for r in stormed_traces if r.status == 429]
        assert limited, "the storm produced no 429"
        for answer in limited:  # the emulator's header says ceil(remaining) ≥ 1 s: nothing earlier
            later = [r for r in stormed_traces if r.time > answer.time]
            assert all(r.time - answer.time >= 1.0 for r in later)
        assert stormed_traces[-1].public_key == services[f"{STORMED}-svc"][1].public  # the rotated key
        assert {r.status for r in emulator.received.requests(healthy.id)} == {202}
        assert emulator.received.span_count(newcomer.id) == len(client.sent.spans[f"{NEWCOMER}-svc"])

        # The forwarder's own account agrees (once the last answers are in), under the SPEC's metric names.
        def exported(project: Project) -> float:
            labels = {"signal": "traces", "project": f"acme/{project.slug}"}
            return metric_value(forwarder, "sentryroute_exported_items_total", labels)

        await wait_until(
            lambda: all(exported(p) == len(client.sent.spans[s]) for s, (p, _) in services.items()),
            what="every export counted",
        )
        assert (
            metric_value(
                forwarder, "sentryroute_rate_limited_seconds_total", {"project": "acme/payments", "category": "traces"}
            )
            >= 1
        )
        families = {family.name: family.type for family in text_string_to_metric_families(scraped)}
        exposed = {f"{name}_total" if kind == "counter" else name: kind for name, kind in families.items()}
        assert {name: exposed.get(name) for name in SPEC_METRICS} == SPEC_METRICS
        assert "sentryroute_dropped_items_total{" not in scraped  # nothing dropped, for any reason


async def test_global_bound_tells_clients_to_retry_and_loses_nothing(
    emulator: SentryEmulator, tmp_path: Path, client_for
) -> None:
    services = projects(emulator, HEALTHY)
    (project, _), service = services[f"{HEALTHY}-svc"], f"{HEALTHY}-svc"
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    # Sentry is slow, not failing: nothing is trimmed, accepted data piles up to the global bound.
    emulator.faults.delay(project.id, seconds=1.0)
    settings = local_settings(path, max_bytes=24_000, batch_timeout=0.02, batch_max_items=8, retry_after=2.0)
    async with Forwarder(settings) as forwarder:
        client = await client_for(forwarder)
        index = 0
        while len(set(client.sent.refusals)) < 2:  # an HTTP and a gRPC refusal
            await client.round(index, (service,), spans=20, logs=1)
            index += 1
            assert index < 200, "the global bound was never reached"
        assert set(client.sent.refusals) == {"HTTP 429", "gRPC RESOURCE_EXHAUSTED"}

        # The gRPC refusal carries RetryInfo (without it OTLP clients drop the data); HTTP a Retry-After.
        request = ExportTraceServiceRequest(resource_spans=[unique_spans(service, 400)[0]])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.traces.Export(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 2.0 <= retry_delay(refused.value) <= 3.0  # at least --retry-after, jittered
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
            body = gzip.compress(request.SerializeToString())
            async with http.post(url, data=body, headers=PROTOBUF_GZIP) as resp:
                assert resp.status == 429
                assert resp.headers["Retry-After"] in {"2", "3"}
            assert await is_ready(http, forwarder)  # a full queue is no reason to leave the Service

        emulator.faults.clear()
        await wait_until(
            lambda: all_arrived(emulator, services, client.sent), within=30, what="everything accepted before the bound"
        )
        await wait_until(lambda: forwarder.pipeline.has_room(8_000), what="room again")
        await client.round(index, (service,))  # retried later: accepted and delivered
        await wait_until(lambda: all_arrived(emulator, services, client.sent), what="the retry")
        assert_exactly_once(emulator, services, client.sent)
        grpc_refusals = client.sent.refusals.count("gRPC RESOURCE_EXHAUSTED") + 1
        assert (
            metric_value(forwarder, "sentryroute_rejected_requests_total", {"code": "RESOURCE_EXHAUSTED"})
            == grpc_refusals
        )


async def test_timeouts_may_duplicate_but_never_lose(emulator: SentryEmulator, tmp_path: Path, client_for) -> None:
    """A Sentry slower than the export timeout may still keep what it was sent: the retry then duplicates it
    (at-least-once, as every OTLP exporter). Nothing is lost, and only data sent while it was slow repeats."""
    services = projects(emulator, HEALTHY)
    (project, _), service = services[f"{HEALTHY}-svc"], f"{HEALTHY}-svc"
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    settings = local_settings(path, batch_timeout=0.02, export_timeout=0.3, retry_initial=0.05, retry_max=0.2)
    emulator.faults.delay(project.id, seconds=0.5)  # answers after the forwarder gave up (Sentry might keep it)
    async with Forwarder(settings) as forwarder:
        client = await client_for(forwarder)
        for index in range(4):
            await client.round(index, (service,))
        await wait_until(
            lambda: metric_value(
                forwarder, "sentryroute_export_requests_total", {"project": f"acme/{HEALTHY}", "outcome": "retry"}
            ),
            what="a timed-out export",
        )
        slow = set(client.sent.spans[service])
        emulator.faults.clear()
        for index in range(4, 8):
            await client.round(index, (service,))
        await wait_until(lambda: all_arrived(emulator, services, client.sent), within=30, what="everything")
        await asyncio.sleep(0.6)  # requests the emulator was still holding land now
    counted = Counter(s.span_id for s in emulator.received.spans(project.id))
    assert set(counted) == set(client.sent.spans[service])  # nothing lost
    duplicated = {span_id for span_id, n in counted.items() if n > 1}
    assert duplicated <= slow, "data sent to a healthy Sentry was delivered twice"

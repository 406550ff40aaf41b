"""Pacing over real sockets: above `--pace-bytes`, an accepted request's answer waits while its project's export
catches up (OTLP/HTTP and OTLP/gRPC clients → a real forwarder → the Sentry emulator).

The emulator's `stall` fault keeps a project's exports unanswered for as long as a test wants, so every wait
below is on a condition (a metric, a finished request, what the emulator recorded), never on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sentryroute_forwarder.app import Forwarder

from sentryroute.emulator import SentryEmulator
from tests.forwarder.support import (
    Transports,
    emulator_projects,
    emulator_table,
    local_settings,
    metric_value,
    resource_spans,
    traces_request,
    wait_until,
    write_table,
)

SLOW, FAST = "slow-svc", "fast-svc"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
SPANS = 20  # per request

_tags = itertools.count()


def body(service: str) -> bytes:
    return traces_request(resource_spans(service, spans=SPANS, tag=f"p{next(_tags)}-")).SerializeToString()


class Clients:
    """One OTLP/HTTP session and one gRPC channel to a forwarder."""

    def __init__(self, forwarder: Forwarder, http: aiohttp.ClientSession, channel: grpc.aio.Channel) -> None:
        self.url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        self.http = http
        self.grpc = trace_service_pb2_grpc.TraceServiceStub(channel)

    async def post(self, service: str) -> int:
        async with self.http.post(self.url, data=body(service), headers=PROTOBUF) as response:
            return response.status

    async def export(self, service: str, *, deadline: float = 30.0) -> None:
        await self.grpc.Export(ExportTraceServiceRequest.FromString(body(service)), timeout=deadline)


@pytest.fixture
def clients_for(transports_for: Transports) -> Callable[[Forwarder], Awaitable[Clients]]:
    async def make(forwarder: Forwarder) -> Clients:
        return Clients(forwarder, *transports_for(forwarder))

    return make


class SlowClientsHeld(NamedTuple):
    forwarder: Forwarder
    ids: dict[str, str]
    clients: Clients
    slow_http: asyncio.Task[int]
    slow_grpc: asyncio.Task[None]


@contextlib.asynccontextmanager
async def slow_clients_held(
    emulator: SentryEmulator, tmp_path: Path, clients_for: Callable[[Forwarder], Awaitable[Clients]]
) -> AsyncIterator[SlowClientsHeld]:
    """A running forwarder whose SLOW project is stalled, with closed-loop clients of it over HTTP and gRPC:
    both accepted, then held."""
    forwarder, ids = start(emulator, tmp_path)
    emulator.faults.stall(ids[SLOW])
    async with forwarder:
        clients = await clients_for(forwarder)
        slow_http = asyncio.create_task(clients.post(SLOW))
        slow_grpc = asyncio.create_task(clients.export(SLOW))
        await wait_until(lambda: held(forwarder) == 2, what="both answers held")
        yield SlowClientsHeld(forwarder, ids, clients, slow_http, slow_grpc)


def held(forwarder: Forwarder) -> float:
    return metric_value(forwarder, "sentryroute_held_answers")


def paced(forwarder: Forwarder, outcome: str) -> float:
    return metric_value(forwarder, "sentryroute_paced_requests_total", {"outcome": outcome})


def start(emulator: SentryEmulator, tmp_path: Path, **overrides: object) -> tuple[Forwarder, dict[str, str]]:
    """A forwarder routing SLOW and FAST to their own emulator projects, pacing above 1 KiB; project ids."""
    services = emulator_projects(emulator, {SLOW: "slow", FAST: "fast"})
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    values: dict[str, object] = {"pace_bytes": 1024, "pace_timeout": 60.0, "batch_timeout": 0.02, **overrides}
    return Forwarder(local_settings(path, **values)), {name: project.id for name, (project, _) in services.items()}


async def test_a_slow_project_holds_its_own_answers_until_export_catches_up_and_loses_nothing(
    emulator: SentryEmulator, tmp_path: Path, clients_for
) -> None:
    async with slow_clients_held(emulator, tmp_path, clients_for) as (forwarder, ids, clients, slow_http, slow_grpc):
        queued = metric_value(forwarder, "sentryroute_queued_bytes")
        assert 0 < queued <= 2 * len(body(SLOW)), "only what the held clients sent is queued"

        # The healthy project's clients are not held behind it: each answer comes as its own export keeps up.
        for _ in range(3):
            assert await clients.post(FAST) == 200
            await clients.export(FAST)
        assert not slow_http.done() and not slow_grpc.done()
        assert held(forwarder) == 2

        emulator.faults.unstall(ids[SLOW])  # export catches up: the held answers go
        assert await slow_http == 200
        await slow_grpc
        assert held(forwarder) == 0
        assert paced(forwarder, "released") >= 2
        assert paced(forwarder, "timed_out") == 0
        await wait_until(
            lambda: (
                emulator.received.span_count(ids[SLOW]) == 2 * SPANS
                and emulator.received.span_count(ids[FAST]) == 6 * SPANS
            ),
            what="every accepted span at its project",
        )
        assert metric_value(forwarder, "sentryroute_rejected_requests_total", {"code": "429"}) == 0


async def test_a_held_answer_times_out_into_success_and_its_data_is_still_delivered(
    emulator: SentryEmulator, tmp_path: Path, clients_for
) -> None:
    forwarder, ids = start(emulator, tmp_path, pace_timeout=0.2)
    emulator.faults.stall(ids[SLOW])
    async with forwarder:
        clients = await clients_for(forwarder)
        assert await clients.post(SLOW) == 200  # held for --pace-timeout, then answered: the data is ours
        assert paced(forwarder, "timed_out") == 1
        assert emulator.received.span_count(ids[SLOW]) == 0  # still stalled: answered before export caught up
        emulator.faults.unstall(ids[SLOW])
        await wait_until(lambda: emulator.received.span_count(ids[SLOW]) == SPANS, what="the held request's spans")


async def test_a_grpc_answer_is_held_for_at_most_half_the_clients_deadline(
    emulator: SentryEmulator, tmp_path: Path, clients_for
) -> None:
    forwarder, ids = start(emulator, tmp_path)  # --pace-timeout 60 s: the client's deadline is the shorter bound
    emulator.faults.stall(ids[SLOW])
    async with forwarder:
        clients = await clients_for(forwarder)
        await clients.export(SLOW, deadline=3.0)  # success, not DEADLINE_EXCEEDED: held for at most ~1.5 s
        assert paced(forwarder, "timed_out") == 1
        emulator.faults.unstall(ids[SLOW])
        await wait_until(lambda: emulator.received.span_count(ids[SLOW]) == SPANS, what="the held request's spans")


async def test_a_failing_project_keeps_its_data_without_holding_its_clients(
    emulator: SentryEmulator, tmp_path: Path, clients_for
) -> None:
    forwarder, ids = start(emulator, tmp_path, retry_initial=0.05, retry_max=0.2)
    emulator.faults.fail(ids[SLOW], status=503)  # until cleared: the queue cannot flow (issue 7's hold)
    async with forwarder:
        clients = await clients_for(forwarder)
        # The first answer may wait until the first 503 shows the queue is stuck; then it goes (not timed out).
        assert await clients.post(SLOW) == 200
        await wait_until(lambda: held(forwarder) == 0, what="no answer held")
        for _ in range(3):  # stuck data is bounded by admission, not paced: answered at once
            assert await clients.post(SLOW) == 200
            await clients.export(SLOW)
        assert paced(forwarder, "timed_out") == 0
        emulator.faults.clear()
        await wait_until(lambda: emulator.received.span_count(ids[SLOW]) == 7 * SPANS, what="every accepted span")


async def test_with_a_queue_directory_the_answer_waits_for_the_write_then_for_pacing(
    emulator: SentryEmulator, tmp_path: Path, clients_for
) -> None:
    forwarder, ids = start(emulator, tmp_path, queue_dir=tmp_path / "queue", queue_fsync=True)
    emulator.faults.stall(ids[SLOW])
    async with forwarder:
        clients = await clients_for(forwarder)
        slow = asyncio.create_task(clients.export(SLOW))
        await wait_until(lambda: held(forwarder) == 1, what="the answer held after its fsync")
        assert metric_value(forwarder, "sentryroute_queue_fsyncs_total") >= 1
        emulator.faults.unstall(ids[SLOW])
        await slow
        assert paced(forwarder, "released") == 1
        await wait_until(lambda: emulator.received.span_count(ids[SLOW]) == SPANS, what="the request's spans")


async def test_shutdown_answers_every_held_request_at_once(
    emulator: SentryEmulator, tmp_path: Path, clients_for
) -> None:
    async with slow_clients_held(emulator, tmp_path, clients_for) as (forwarder, ids, _, slow_http, slow_grpc):
        stopping = asyncio.create_task(forwarder.stop())
        assert await slow_http == 200  # answered by the shutdown, not by export (still stalled)
        await slow_grpc
        assert paced(forwarder, "released") == 2
        emulator.faults.unstall(ids[SLOW])  # the drain delivers what was held
        await stopping
    assert emulator.received.span_count(ids[SLOW]) == 2 * SPANS

"""Fixtures for the emulator tests: a running emulator on a real socket, seeded with acme/backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from sentryroute.emulator import EmulatorConfig, Project, SentryEmulator

PROTOBUF = "application/x-protobuf"


@dataclass
class Seeded:
    emu: SentryEmulator
    token: str
    checkout: Project
    payments: Project
    key: str  # public key of checkout's "Default" key

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def sentry_auth(self, key: str | None = None) -> dict[str, str]:
        return {"x-sentry-auth": f"sentry sentry_key={key or self.key}"}


def traces_request(service: str = "checkout-svc", spans: int = 1) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", service
    scope = resource_spans.scope_spans.add()
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = bytes([1] * 16), (i + 1).to_bytes(8, "big"), f"span-{i}"
    return request


def logs_request(service: str = "checkout-svc", body: str = "hello") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", service
    record = resource_logs.scope_logs.add().log_records.add()
    record.body.string_value = body
    record.severity_number = SeverityNumber.SEVERITY_NUMBER_INFO
    return request


def seed(emu: SentryEmulator) -> Seeded:
    emu.state.add_org("acme")
    emu.state.add_team("acme", "backend")
    checkout = emu.state.add_project("acme", "backend", "checkout")
    payments = emu.state.add_project("acme", "backend", "payments")
    token = emu.state.add_token(scopes=["org:read", "project:read", "project:write"])
    key = emu.state.project_keys(checkout.id)[0].public
    return Seeded(emu=emu, token=token, checkout=checkout, payments=payments, key=key)


StartEmulator = Callable[..., Awaitable[Seeded]]


@pytest.fixture
async def start_emulator() -> AsyncIterator[StartEmulator]:
    """`await start_emulator(page_size=2, ...)`: a seeded emulator with that config, stopped after the test."""
    started: list[SentryEmulator] = []

    async def start(**config: object) -> Seeded:
        emu = SentryEmulator(EmulatorConfig(**config))  # type: ignore[arg-type]
        await emu.start()
        started.append(emu)
        return seed(emu)

    yield start
    for emu in started:
        await emu.stop()


@pytest.fixture
async def seeded(start_emulator: StartEmulator) -> Seeded:
    return await start_emulator()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # auto_decompress off so the tests see exactly what the emulator sent.
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session

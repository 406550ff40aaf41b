"""Fixtures of the forwarder tests: forwarders with a fake pipeline, HTTP sessions, the Sentry emulator, a scripted
upstream and started queue pipelines. Plain helpers are in `support.py` and `queue_support.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.queue.pipeline import QueuePipeline

from sentryroute.emulator import EmulatorConfig, SentryEmulator
from sentryroute.routes import RoutesTable
from tests.forwarder.queue_support import PipelineFactory, SentryWorld, Upstream, pipeline_test_settings
from tests.forwarder.support import DEFAULT_TABLE, FakePipeline, Transports, local_settings, write_table


@pytest.fixture
def routes_path(tmp_path: Path) -> Path:
    path = tmp_path / "routes.json"
    write_table(path, DEFAULT_TABLE)
    return path


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
async def forwarder(routes_path: Path, fake_pipeline: FakePipeline) -> AsyncIterator[Forwarder]:
    """A started forwarder (fake pipeline) with DEFAULT_TABLE loaded."""
    async with Forwarder(local_settings(routes_path), pipeline=fake_pipeline) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def transports_for() -> AsyncIterator[Transports]:
    """`transports_for(forwarder)`: an HTTP session and a gRPC channel to a started forwarder, closed at the end."""
    opened: list[tuple[aiohttp.ClientSession, grpc.aio.Channel]] = []

    def make(forwarder: Forwarder) -> tuple[aiohttp.ClientSession, grpc.aio.Channel]:
        pair = aiohttp.ClientSession(), grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}")
        opened.append(pair)
        return pair

    yield make
    for session, channel in opened:
        await session.close()
        await channel.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()
    app = web.Application()
    app.router.add_post("/api/{project_id}/integration/otlp/v1/{signal}/", state.handle)
    runner = web.AppRunner(app, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


@pytest.fixture
async def emulator() -> AsyncIterator[SentryEmulator]:
    async with SentryEmulator(EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
def world(emulator: SentryEmulator) -> SentryWorld:
    return SentryWorld(emulator)


@pytest.fixture
async def make_pipeline() -> AsyncIterator[PipelineFactory]:
    """Started pipelines with test settings (override any field by keyword); closed at the end of the test."""
    created: list[QueuePipeline] = []

    async def make(table: RoutesTable | None = None, **overrides: object) -> tuple[QueuePipeline, ForwarderMetrics]:
        metrics = ForwarderMetrics()
        pipeline = QueuePipeline(pipeline_test_settings(**overrides), metrics)
        await pipeline.start()
        if table is not None:
            pipeline.apply_table(table)
        created.append(pipeline)
        return pipeline, metrics

    yield make
    for pipeline in created:
        await pipeline.close(0.0)

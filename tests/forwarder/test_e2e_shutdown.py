"""Graceful shutdown end to end: data still waiting in a batch is delivered to Sentry before the process ends."""

from __future__ import annotations

import aiohttp
from sentryroute_forwarder.app import Forwarder

from sentryroute.emulator import SentryEmulator
from tests.forwarder.support import (
    emulator_projects,
    emulator_table,
    local_settings,
    resource_spans,
    traces_request,
    write_table,
)


async def test_stop_flushes_batches_that_are_still_waiting(emulator: SentryEmulator, tmp_path):
    services = emulator_projects(emulator, {"orders": "orders"})
    project = services["orders"][0]
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    # A batch would wait a minute for more data: only the shutdown flush can deliver it in time.
    forwarder = Forwarder(local_settings(path, batch_timeout=60.0, shutdown_timeout=10.0))
    await forwarder.start()
    try:
        body = traces_request(resource_spans("orders", spans=9)).SerializeToString()
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as resp,
        ):
            assert resp.status == 200
        assert emulator.received.spans(project.id) == []
    finally:
        undelivered = await forwarder.stop()
    assert undelivered == 0
    assert len(emulator.received.spans(project.id)) == 9

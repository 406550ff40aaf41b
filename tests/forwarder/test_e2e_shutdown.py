"""Graceful shutdown end to end: data still waiting in a batch is delivered to Sentry before the process ends."""

from __future__ import annotations

import tracemalloc

import aiohttp
from sentryroute_forwarder.app import Forwarder

from sentryroute.emulator import SentryEmulator
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


async def test_stop_counts_a_batch_held_as_its_gzip_body_without_inflating_it(emulator: SentryEmulator, tmp_path):
    """Without a queue directory, what is left at the end is dropped and counted; a batch that was sent (and
    refused) is held as its gzip body, and counting its items must not inflate it (a 6 MB payload here; up to
    a batch per queue, with many queues)."""
    services = emulator_projects(emulator, {"orders": "orders"})
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    emulator.faults.fail(services["orders"][0].id, status=503)  # sent once, then backing off when stopped
    settings = local_settings(
        path, batch_timeout=0.01, batch_max_bytes=16 << 20, retry_initial=60.0, retry_max=60.0, shutdown_timeout=0.2
    )
    forwarder = Forwarder(settings)
    await forwarder.start()
    stopped = False
    try:
        body = traces_request(resource_spans("orders", spans=7, extra={"padding": "x" * 6_000_000}))
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}) as resp,
        ):
            assert resp.status == 200
        refused = {"project": "acme/orders", "status": "503"}
        await wait_until(
            lambda: metric_value(forwarder, "sentryroute_export_responses_total", refused) == 1,
            what="the batch sent and refused: now held as its gzip body",
        )
        tracemalloc.start()
        try:
            undelivered = await forwarder.stop()
            stopped = True
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        if not stopped:
            await forwarder.stop()
    assert undelivered == 7
    assert metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "traces", "reason": "shutdown"}) == 7
    assert peak < 2_000_000, f"stop allocated {peak} bytes at its peak: the 6 MB payload was inflated"

"""Above `--pace-bytes` queued, a batch does not wait out `--batch-timeout` to fill (queue/exporter.py): with
many projects each queue holds less than a batch while together they hold the memory."""

from __future__ import annotations

import aiohttp
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.queue.pipeline import QueuePipeline

from sentryroute.emulator import SentryEmulator
from tests.forwarder.support import (
    emulator_projects,
    emulator_table,
    local_settings,
    resource_spans,
    traces_request,
    wait_until,
    write_table,
)

PACE_BYTES = 64 * 1024


async def test_batches_stop_waiting_to_fill_once_everything_queued_passes_pace_bytes(
    emulator: SentryEmulator, tmp_path
) -> None:
    services = emulator_projects(emulator, {f"svc-{n}": f"svc-{n}" for n in range(8)})
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    ids = [project.id for project, _ in services.values()]
    # An hour of batch timeout: nothing is sent unless memory pressure starts the batches.
    settings = local_settings(path, batch_timeout=3600, pace_bytes=PACE_BYTES)
    padding = {"padding": "x" * 9000}
    async with Forwarder(settings) as forwarder, aiohttp.ClientSession() as http:
        pipeline = forwarder.pipeline
        assert isinstance(pipeline, QueuePipeline)
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}

        small = traces_request(resource_spans("svc-0", spans=1))
        async with http.post(url, data=small.SerializeToString(), headers=headers) as resp:
            assert resp.status == 200
        assert pipeline.stats().items == 1  # below --pace-bytes: waits for its batch to fill
        assert emulator.received.requests() == []

        # Each project's queue stays under its pacing share; together they pass --pace-bytes.
        spread = traces_request(*(resource_spans(f"svc-{n}", spans=9, extra=padding) for n in range(8)))
        body = spread.SerializeToString()
        assert PACE_BYTES < len(body) < 2 * PACE_BYTES
        async with http.post(url, data=body, headers=headers) as resp:
            assert resp.status == 200
        await wait_until(
            lambda: sum(emulator.received.span_count(i) for i in ids) >= 1 + 8 * 9, within=30, what="every span sent"
        )


async def test_with_many_queues_batches_stop_waiting_from_half_of_pace_bytes(
    emulator: SentryEmulator, tmp_path
) -> None:
    """Many queues (their equal share of --pace-bytes below one batch): their clients are paced above 1.5 x
    --pace-bytes, so their batches leave in turn from half of it instead of waiting out the batch timeout."""
    services = emulator_projects(emulator, {f"svc-{n}": f"svc-{n}" for n in range(8)})
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    ids = [project.id for project, _ in services.values()]
    settings = local_settings(path, batch_timeout=3600, pace_bytes=PACE_BYTES)  # 8 queues x 1 MiB batches > 64 KiB
    padding = {"padding": "x" * 4500}
    async with Forwarder(settings) as forwarder, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        spread = traces_request(*(resource_spans(f"svc-{n}", spans=9, extra=padding) for n in range(8)))
        body = spread.SerializeToString()
        assert PACE_BYTES // 2 < len(body) < PACE_BYTES
        async with http.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as resp:
            assert resp.status == 200
        await wait_until(
            lambda: sum(emulator.received.span_count(i) for i in ids) >= 8 * 9, within=30, what="every span sent"
        )

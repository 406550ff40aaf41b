"""A payload read back from the queue directory is checked like replay checks it: bytes that changed on disk
after they were written (a failing disk, a stray writer) are dropped and counted, never sent to Sentry, and
the rest of the queue is delivered. A running forwarder, the Sentry emulator, a segment file changed by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

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

PROTOBUF = {"Content-Type": "application/x-protobuf"}
SPANS = 4


def corrupt_on_disk(queue_dir: Path, marker: bytes) -> None:
    """Change one byte of `marker` where a segment file holds it (through its own descriptor, as another
    writer would: the forwarder reads the same page cache)."""
    for path in sorted(queue_dir.glob("*.seg")):
        data = path.read_bytes()
        at = data.find(marker)
        if at >= 0:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, b"X", at)
            finally:
                os.close(fd)
            return
    raise AssertionError(f"{marker!r} is in no segment file")


async def test_a_record_corrupted_on_disk_after_start_is_dropped_and_counted_not_sent(
    emulator: SentryEmulator, tmp_path: Path
) -> None:
    services = emulator_projects(emulator, {"orders": "orders"})
    project_id = services["orders"][0].id
    routes = tmp_path / "routes.json"
    write_table(routes, emulator_table(emulator, services))
    queue_dir = tmp_path / "queue"
    settings = local_settings(
        routes, queue_dir=queue_dir, batch_timeout=0.02, retry_initial=0.05, retry_max=0.2, export_timeout=5.0
    )
    emulator.faults.fail(project_id, status=503)  # the first sends fail: the batch is read back from disk after
    async with Forwarder(settings) as forwarder, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        for tag in ("doomed-", "intact-"):
            body = traces_request(resource_spans("orders", spans=SPANS, tag=tag)).SerializeToString()
            async with http.post(url, data=body, headers=PROTOBUF) as response:
                assert response.status == 200
        await wait_until(
            lambda: (
                metric_value(
                    forwarder, "sentryroute_export_responses_total", {"project": "acme/orders", "status": "503"}
                )
                >= 1
            ),
            what="a send refused by Sentry (the batch's payloads now live on disk only)",
        )
        corrupt_on_disk(queue_dir, b"doomed-orders-0-1")
        emulator.faults.clear()

        await wait_until(
            lambda: emulator.received.span_count(project_id) >= SPANS, what="the intact request's spans delivered"
        )
        names = sorted(span.name for span in emulator.received.spans(project_id))
        assert names == [f"intact-orders-0-{i}" for i in range(SPANS)]  # nothing of the corrupt record was sent
        dropped = {"signal": "traces", "reason": "corrupt"}
        assert metric_value(forwarder, "sentryroute_dropped_items_total", dropped) == SPANS
        assert metric_value(forwarder, "sentryroute_queue_corrupt_bytes_total") > len(body) // 2
        # The emulator has the spans before the forwarder has its answer and lets the batch go.
        await wait_until(
            lambda: metric_value(forwarder, "sentryroute_queued_bytes") == 0, what="the queue emptied once delivered"
        )

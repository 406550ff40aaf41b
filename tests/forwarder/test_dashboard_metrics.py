"""The metrics the dashboard and the alerts read that SPEC §6 does not fix: readiness, the byte bound, when the
table was loaded, Sentry's answers by status, the live rate-limit deadlines, and the process's CPU and memory."""

from __future__ import annotations

import time
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


async def test_dashboard_metrics_follow_the_forwarder(emulator: SentryEmulator, tmp_path: Path) -> None:
    services = emulator_projects(emulator, {"orders-svc": "orders", "limited-svc": "limited"})
    limited = services["limited-svc"][0]
    emulator.faults.rate_limit(limited.id, seconds=120, categories="span")
    routes = tmp_path / "routes.json"
    settings = local_settings(routes, max_bytes=64 << 20, batch_timeout=0.05)
    async with Forwarder(settings) as forwarder:
        assert metric_value(forwarder, "sentryroute_ready") == 0  # no table yet
        assert metric_value(forwarder, "sentryroute_queue_limit_bytes") == 64 << 20
        before = time.time()
        write_table(routes, emulator_table(emulator, services))
        await wait_until(lambda: metric_value(forwarder, "sentryroute_ready") == 1, what="ready")
        assert before - 1 <= metric_value(forwarder, "sentryroute_routes_loaded_timestamp_seconds") <= time.time()

        body = traces_request(resource_spans("orders-svc"), resource_spans("limited-svc")).SerializeToString()
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
            async with http.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as resp:
                assert resp.status == 200

        def answered(project: str, status: str) -> float:
            return metric_value(forwarder, "sentryroute_export_responses_total", {"project": project, "status": status})

        def remaining() -> float:
            labels = {"scope": "project", "target": "acme/limited", "signal": "traces"}
            return metric_value(forwarder, "sentryroute_rate_limit_remaining_seconds", labels)

        await wait_until(
            lambda: answered("acme/orders", "202") >= 1 and answered("acme/limited", "429") >= 1,
            what="a 202 for orders and a 429 for limited",
        )
        assert 60 < remaining() <= 120  # the deadline Sentry set, counting down
        assert metric_value(forwarder, "process_cpu_seconds_total") > 0
        assert metric_value(forwarder, "process_resident_memory_bytes") > 0
    assert metric_value(forwarder, "sentryroute_ready") == 0  # shutting down

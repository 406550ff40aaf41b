"""The OpenTelemetry JS SDK (tests/js, installed from npm by scripts/install-js-clients.sh) as a second client.

Its HTTP exporter retries a 429/503 at most 5 times, waiting exactly the Retry-After it gets; its gRPC exporter
does not retry RESOURCE_EXHAUSTED at all. So for these clients pushback costs data. With a queue directory and
a small memory bound, a burst for a healthy project while another project is failing is simply accepted: the
SDK reports every batch exported, and every span arrives.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import pytest

from sentryroute.emulator import SentryEmulator
from tests.forwarder.durability import scrape, start_forwarder, total
from tests.forwarder.support import emulator_table, wait_until, write_table
from tests.forwarder.test_e2e_faults import projects

JS = Path(__file__).resolve().parents[1] / "js"
BURST = 6000  # spans per client: about 12 batches of 512


@pytest.fixture(scope="module")
def js_clients() -> Path:
    """tests/js with its node_modules (installed here when `make tools` has not run yet)."""
    install = subprocess.run(
        ["bash", str(JS.parents[1] / "scripts" / "install-js-clients.sh")], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr
    return JS


async def burst(js: Path, protocol: str, url: str, service: str) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        "node", str(js / "burst.js"), protocol, url, service, str(BURST),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_js_sdk_bursts_cost_no_data_while_another_project_fails(
    emulator: SentryEmulator, tmp_path: Path, js_clients: Path
) -> None:
    services = projects(emulator, "web", "api", "broken")
    broken = services["broken-svc"][0]
    routes = tmp_path / "routes.json"
    write_table(routes, emulator_table(emulator, services))
    emulator.faults.fail(broken.id, status=503)  # one project is down for the whole burst
    process, (http_port, grpc_port, admin_port) = await start_forwarder(
        routes, "--queue-dir", str(tmp_path / "queue"), "--max-bytes", "256KiB"
    )
    try:
        results = await asyncio.gather(
            burst(js_clients, "http", f"http://127.0.0.1:{http_port}/v1/traces", "web-svc"),
            burst(js_clients, "grpc", f"http://127.0.0.1:{grpc_port}", "api-svc"),
            burst(js_clients, "http", f"http://127.0.0.1:{http_port}/v1/traces", "broken-svc"),
        )
        for result in results:
            assert result["exported"] == BURST and result["failed"] == 0, result
        web, api = services["web-svc"][0], services["api-svc"][0]
        await wait_until(
            lambda: emulator.received.span_count(web.id) >= BURST and emulator.received.span_count(api.id) >= BURST,
            what="both healthy bursts delivered",
        )
        for project, service in ((web, "web-svc"), (api, "api-svc")):
            names = {span.name for span in emulator.received.spans(project.id)}
            assert names == {f"{service}-{i}" for i in range(BURST)}
        samples = await scrape(admin_port)
        assert total(samples, "sentryroute_rejected_requests_total") == 0  # nobody was pushed back
        emulator.faults.clear()  # the failing project recovers: what it was accepted for arrives too
        await wait_until(lambda: emulator.received.span_count(broken.id) >= BURST, what="the failing project's")
        assert total(await scrape(admin_port), "sentryroute_dropped_items_total") == 0
    finally:
        process.process.send_signal(signal.SIGTERM)
        await process.finish()

"""The files in `examples/` stay valid: SentryRoutes against the CRD schema, and the hand-written routes file
delivers through a real forwarder to the emulator seeded from `seed-example.yaml`."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import jsonschema  # type: ignore[import-untyped]
import yaml
from sentryroute_forwarder.app import Forwarder

from sentryroute.emulator import EmulatorConfig, SentryEmulator
from sentryroute.emulator.seed import load_seed_file
from sentryroute.routes import parse_routes_table
from tests.crd.schema_tools import open_api_schema, strict_schema
from tests.forwarder.support import local_settings, resource_spans, traces_request, wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def test_every_example_sentryroute_is_valid_against_the_crd() -> None:
    routes = [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "SentryRoute"
    ]
    assert len(routes) == 4
    for schema in (open_api_schema(), strict_schema(open_api_schema())):
        for route in routes:
            jsonschema.Draft7Validator(schema).validate(route)


async def test_hand_written_routes_file_delivers_to_the_seeded_emulator(tmp_path: Path) -> None:
    async with SentryEmulator(EmulatorConfig()) as emu:
        load_seed_file(emu.state, REPO / "sentryroute" / "emulator" / "seed-example.yaml")
        text = (EXAMPLES / "routes.json").read_text().replace("http://127.0.0.1:9000", emu.url)
        routes = tmp_path / "routes.json"
        routes.write_text(text)
        table = parse_routes_table(text)
        async with Forwarder(local_settings(routes, batch_timeout=0.05)) as forwarder:
            body = traces_request(
                resource_spans("checkout-service", spans=3),
                resource_spans("payments-worker", spans=2),
                resource_spans("something-else", spans=4),
            ).SerializeToString()
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
                headers = {"Content-Type": "application/x-protobuf"}
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 200
            expected = {"acme/checkout": 3, "acme/payments": 2, "acme/fallback": 4}
            for key, count in expected.items():
                project_id = table.projects[key].id
                await wait_until(
                    lambda pid=project_id, n=count: len(emu.received.spans(pid)) == n,  # type: ignore[misc]
                    what=f"{count} spans at {key}",
                )

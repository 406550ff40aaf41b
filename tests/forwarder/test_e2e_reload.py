"""End to end with a table change: data held for pending and unrouted values is delivered once a new table
routes them — without a restart, with the real queue, to the Sentry emulator."""

from __future__ import annotations

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


async def test_held_data_is_delivered_after_the_table_routes_it(emulator: SentryEmulator, tmp_path):
    services = emulator_projects(emulator, {name: name for name in ("orders", "products", "newcomer")})
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, {"orders": services["orders"]}, unrouted="hold", pending=["products"]))
    async with Forwarder(local_settings(path, batch_timeout=0.05)) as forwarder, aiohttp.ClientSession() as http:
        body = traces_request(
            resource_spans("orders", spans=2),
            resource_spans("products", spans=3),
            resource_spans("newcomer", spans=4),
        ).SerializeToString()
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        async with http.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as resp:
            assert resp.status == 200  # held data is accepted, not rejected

        orders, products, newcomer = (services[name][0] for name in ("orders", "products", "newcomer"))
        await wait_until(lambda: len(emulator.received.spans(orders.id)) == 2, within=30, what="orders")
        assert emulator.received.spans(products.id) == emulator.received.spans(newcomer.id) == []

        write_table(path, emulator_table(emulator, services, unrouted="hold"))

        def all_delivered() -> bool:
            return len(emulator.received.spans(products.id)) == 3 and len(emulator.received.spans(newcomer.id)) == 4

        await wait_until(all_delivered, within=30, what="the held spans")
        assert len(emulator.received.spans(orders.id)) == 2
        assert (
            metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "traces", "reason": "unrouted"}) == 0
        )

"""The counting sink: stands in for Sentry (and for rotel's upstream), counts spans and log records delivered.

Items are counted by walking the wire format with the forwarder's own reader (resources decoded, spans and
records only counted), so the sink is far from being the bottleneck (docs/performance-facts.md). It remembers when
the count last grew, which is when the last item of a round arrived.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from isal import isal_zlib
from sentryroute_forwarder.route.wire import parse_records

__all__ = ["CountingSink"]


class CountingSink:
    def __init__(self) -> None:
        self.items = 0
        self.requests = 0
        self.gzipped = 0  # requests with Content-Encoding: gzip
        self.wire_bytes = 0  # request bodies as received
        self.target = 0
        self.reached_at = 0.0  # perf_counter when `items` reached `target`
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.wire_bytes += len(body)
        if request.headers.get("Content-Encoding") == "gzip":
            self.gzipped += 1
            body = isal_zlib.decompress(body, wbits=31)
        self.items += sum(record.items for record in parse_records(body, keys=()))
        self.requests += 1
        if self.target and self.items >= self.target and not self.done.is_set():
            self.reached_at = time.perf_counter()
            self.done.set()
        return web.Response(status=200, content_type="application/x-protobuf")  # an empty Export*Response

    def reset(self) -> None:
        self.items = self.requests = self.gzipped = self.wire_bytes = self.target = 0
        self.done.clear()

    async def wait_for(self, items: int, *, within: float) -> bool:
        """Wait until `items` have arrived since the last reset; False when they did not within `within` seconds."""
        self.target = items
        if self.items >= items:
            self.reached_at = time.perf_counter()
            self.done.set()
        try:
            await asyncio.wait_for(self.done.wait(), within)
        except TimeoutError:
            return False
        return True

    async def settle(self, quiet: float = 0.5) -> None:
        """Wait until nothing has arrived for `quiet` seconds (longer than both systems' batch timeout)."""
        while True:
            seen = self.requests
            await asyncio.sleep(quiet)
            if self.requests == seen:
                return

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{project}/integration/otlp/v1/{signal}/", self.handle)  # sentryroute
        app.router.add_post("/v1/{signal}", self.handle)  # rotel's OTLP/HTTP exporter
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)  # inflated with ISA-L above
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, int(runner.addresses[0][1])

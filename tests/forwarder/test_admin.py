"""The admin listener: /healthz, /readyz (first table → shutdown) and /metrics, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client.parser import text_string_to_metric_families
from sentryroute_forwarder.app import Forwarder

from tests.forwarder.support import DEFAULT_TABLE, local_settings, wait_until, write_table


class SlowClosingPipeline:
    """A pipeline whose flush takes a while, to look at the forwarder while it shuts down."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self.release = asyncio.Event()

    def has_room(self, nbytes: int) -> bool:
        return True

    def retry_after(self, nbytes: int) -> float | None:
        return None

    def offer(self, parts, *, hold_limit=None) -> None:
        pass

    def apply_table(self, table) -> None:
        pass

    async def start(self) -> None:
        pass

    def release_answers(self) -> None:
        pass

    async def close(self, timeout: float) -> int:  # noqa: ASYNC109 - the Pipeline signature
        self.closing.set()
        await self.release.wait()
        return 3


@contextlib.asynccontextmanager
async def started(path) -> AsyncIterator[tuple[Forwarder, SlowClosingPipeline, str]]:
    """A forwarder on `path` with a slowly closing pipeline: (forwarder, pipeline, admin URL)."""
    pipeline = SlowClosingPipeline()
    forwarder = Forwarder(local_settings(path), pipeline=pipeline)
    await forwarder.start()
    try:
        yield forwarder, pipeline, f"http://127.0.0.1:{forwarder.admin_port}"
    finally:
        pipeline.release.set()
        await forwarder.stop()


async def test_health_readiness_and_metrics(tmp_path, http):
    path = tmp_path / "routes.json"
    async with started(path) as (forwarder, pipeline, admin):
        async with http.get(f"{admin}/healthz") as resp:
            assert (resp.status, await resp.text()) == (200, "ok\n")
        async with http.get(f"{admin}/readyz") as resp:
            assert resp.status == 503
            assert "no routes table" in await resp.text()

        write_table(path, DEFAULT_TABLE)

        async def ready() -> bool:
            async with http.get(f"{admin}/readyz") as resp:
                return resp.status == 200

        await wait_until(ready, what="/readyz to turn 200")

        async with http.get(f"{admin}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
        (sample,) = families["sentryroute_routes_revision_info"].samples
        assert sample.labels == {"revision": DEFAULT_TABLE.revision}
        assert "sentryroute_received_items" in families

        stopping = asyncio.create_task(forwarder.stop())
        await asyncio.wait_for(pipeline.closing.wait(), 10)
        async with http.get(f"{admin}/readyz") as resp:  # flushing: alive, not ready
            assert resp.status == 503
            assert "shutting down" in await resp.text()
        async with http.get(f"{admin}/healthz") as resp:
            assert resp.status == 200
        pipeline.release.set()
        assert await asyncio.wait_for(stopping, 10) == 3


async def test_unknown_pages_other_methods_and_head(tmp_path, http):
    path = tmp_path / "routes.json"
    write_table(path, DEFAULT_TABLE)
    async with started(path) as (_, _, admin):
        async with http.get(f"{admin}/nothing-here") as resp:
            assert resp.status == 404
        async with http.post(f"{admin}/metrics", data=b"x" * 10_000) as resp:  # its body is read and dropped
            assert resp.status == 405
            assert resp.headers["Allow"] == "GET, HEAD"
        async with http.head(f"{admin}/healthz") as resp:  # the headers of GET, no body
            assert resp.status == 200
            assert resp.headers["Content-Length"] == "3"
            assert await resp.read() == b""
        async with http.get(f"{admin}/healthz?probe=1") as resp:  # the same connection, kept alive
            assert (resp.status, await resp.text()) == (200, "ok\n")

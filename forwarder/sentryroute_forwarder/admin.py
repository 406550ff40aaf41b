"""The admin listener: Prometheus metrics, liveness and readiness (SPEC §6).

Readiness means "a routes table is loaded and shutdown has not begun" — never queue fullness or Sentry
reachability, so that an upstream outage does not take every forwarder out of its Service at once.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sentryroute_forwarder.metrics import ForwarderMetrics

__all__ = ["build_admin_app"]


def build_admin_app(*, metrics: ForwarderMetrics, not_ready_reason: Callable[[], str | None]) -> web.Application:
    """`not_ready_reason()` returns None when ready, else a short reason shown by /readyz."""

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")  # answering at all proves the event loop runs

    async def readyz(request: web.Request) -> web.Response:
        reason = not_ready_reason()
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    app = web.Application()
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app

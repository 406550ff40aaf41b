"""The admin listener: Prometheus metrics, liveness and readiness (SPEC §6).

Readiness means "a routes table is loaded and shutdown has not begun" — never queue fullness or Sentry
reachability, so that an upstream outage does not take every forwarder out of its Service at once.

It runs on the receivers' own HTTP/1.x server (`receive/http_protocol.py`) rather than aiohttp's: aiohttp's
server package was imported for these three pages alone (~1.5 MB of the resting process, measured).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.receive.http_answer import Answer
from sentryroute_forwarder.receive.http_protocol import HttpServer, Request

__all__ = ["ADMIN_MAX_CONNECTIONS", "AdminPages", "build_admin_server"]

#: Open connections the admin listener keeps (probes and scrapes need a few); more are answered 503.
ADMIN_MAX_CONNECTIONS = 64
_TEXT = "text/plain; charset=utf-8"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n"
    b"Connection: close\r\n\r\nbusy\n"
)


class AdminPages:
    """/metrics, /healthz and /readyz for GET (and HEAD); everything is answered from the head alone."""

    def __init__(self, *, metrics: ForwarderMetrics, not_ready_reason: Callable[[], str | None]) -> None:
        self._metrics = metrics
        self._not_ready_reason = not_ready_reason

    def begin(self, request: Request) -> Answer:
        page = {"/metrics": self._prometheus, "/healthz": self._healthz, "/readyz": self._readyz}.get(request.path)
        if page is None:
            return Answer(404, _TEXT, b"404: Not Found\n")
        if request.method not in ("GET", "HEAD"):
            return Answer(405, _TEXT, b"405: Method Not Allowed\n", {"Allow": "GET, HEAD"})
        return page()

    def refuse(self, request: Request | None, status: int, message: str) -> Answer:
        return Answer(status, _TEXT, f"{status}: {message}\n".encode())

    def _prometheus(self) -> Answer:
        return Answer(200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry))

    def _healthz(self) -> Answer:
        return Answer(200, _TEXT, b"ok\n")  # answering at all proves the event loop runs

    def _readyz(self) -> Answer:
        reason = self._not_ready_reason()
        if reason is None:
            return Answer(200, _TEXT, b"ready\n")
        return Answer(503, _TEXT, f"not ready: {reason}\n".encode())


def build_admin_server(
    *, metrics: ForwarderMetrics, not_ready_reason: Callable[[], str | None], read_timeout: float
) -> HttpServer:
    """The admin server (not listening yet)."""
    return HttpServer(
        AdminPages(metrics=metrics, not_ready_reason=not_ready_reason),
        read_timeout=read_timeout,
        max_connections=ADMIN_MAX_CONNECTIONS,
        busy_answer=_BUSY,
        on_busy=lambda: None,
    )

"""The pieces every handler of the emulator shares."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sentryroute.emulator.config import EmulatorConfig
from sentryroute.emulator.faults import Faults
from sentryroute.emulator.received import Received
from sentryroute.emulator.state import State

_WILDCARDS = ("0.0.0.0", "[::]")


@dataclass
class Context:
    config: EmulatorConfig
    state: State
    faults: Faults
    received: Received
    # host:port the server listens on, filled in by `SentryEmulator.start`.
    listen_netloc: str = "127.0.0.1"

    def origin(self, request: web.Request | None = None) -> str:
        """`http://host:port` as written into DSNs and pagination links (Sentry's `system.url-prefix`).

        On a wildcard listen address the request's own Host is the only useful answer.
        """
        netloc = self.config.public_host or self.listen_netloc
        if request is not None and not self.config.public_host and netloc.rsplit(":", 1)[0] in _WILDCARDS:
            netloc = request.host
        return f"http://{netloc}"

    def base_url(self, request: web.Request | None = None) -> str:
        """`origin` plus the path prefix: where the API and ingest endpoints live."""
        return self.origin(request) + self.config.path_prefix


CONTEXT_KEY = web.AppKey("sentryroute_emulator_context", Context)

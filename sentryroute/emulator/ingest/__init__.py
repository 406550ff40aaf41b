"""Relay's OTLP/HTTP ingest (reference §2): endpoints, auth, body decoding and the OTLP payload decoder."""

from __future__ import annotations

from aiohttp import web

from sentryroute.emulator.ingest.handler import IngestHandler

# (path, signal): the current integration routes and the legacy traces route (reference §2.1).
PATHS = (
    ("/api/{project_id}/integration/otlp/v1/traces", "traces"),
    ("/api/{project_id}/integration/otlp/v1/logs", "logs"),
    ("/api/{project_id}/otlp/v1/traces", "traces"),
)


def routes(prefix: str) -> list[web.RouteDef]:
    """Every ingest path, with and without a trailing slash (POST only, like Relay)."""
    defs = []
    for path, signal in PATHS:
        handler = IngestHandler(signal).handle
        defs += [web.post(prefix + path, handler), web.post(prefix + path + "/", handler)]
    return defs

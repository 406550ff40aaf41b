"""Helpers of the queue → export tests: fast settings, a Sentry emulator world, routed parts, a scripted upstream.

Their fixtures (`emulator`, `world`, `upstream`, `make_pipeline`) live in `conftest.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import RoutedPart, Signal
from sentryroute_forwarder.queue.pipeline import QueuePipeline
from sentryroute_forwarder.queue.settings import PipelineSettings
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.split import split_request

from sentryroute.emulator import SentryEmulator
from sentryroute.routes import RoutesTable
from tests.forwarder.support import logs_request, resource_logs, resource_spans, traces_request

ORG = "acme"
TEAM = "backend"


#: The pipeline's settings scaled so that fault tests run in seconds (any field can be overridden).
FAST_PIPELINE: dict[str, object] = {
    "max_bytes": 64 * 1024 * 1024,
    "max_hold": 30.0,
    "batch_timeout": 0.05,
    "export_timeout": 5.0,
    "connect_timeout": 2.0,
    "retry_initial": 0.05,
    "retry_max": 0.4,
    "default_rate_limit": 1.0,
}


def pipeline_test_settings(**overrides: object) -> PipelineSettings:
    return PipelineSettings(**{**FAST_PIPELINE, **overrides})  # type: ignore[arg-type]


@dataclass
class SentryWorld:
    """Projects in the emulator and routes tables that point at them (project keys `acme/<slug>`)."""

    emu: SentryEmulator
    ids: dict[str, str] = field(default_factory=dict)  # slug → project id
    keys: dict[str, str] = field(default_factory=dict)  # slug → public key the table uses

    def __post_init__(self) -> None:
        self.emu.state.add_org(ORG)
        self.emu.state.add_team(ORG, TEAM)

    def project(self, slug: str, *, org: str = ORG) -> str:
        """Create a project (and its key); returns its id."""
        if org not in self.emu.state.orgs:
            self.emu.state.add_org(org)
            self.emu.state.add_team(org, TEAM)
        project = self.emu.state.add_project(org, TEAM, slug)
        self.ids[slug] = project.id
        self.keys[slug] = self.emu.state.add_key(org, slug, name="sentryroute").public
        return project.id

    def endpoint(self, slug: str) -> dict[str, str]:
        pid = self.ids[slug]
        base = f"{self.emu.url}/api/{pid}/integration/otlp/v1"
        return {"id": pid, "tracesUrl": f"{base}/traces/", "logsUrl": f"{base}/logs/", "publicKey": self.keys[slug]}

    def table(
        self,
        routes: Mapping[str, str],
        *,
        pending: Iterable[str] = (),
        unrouted: str = "drop",
        orgs: Mapping[str, str] | None = None,
    ) -> RoutesTable:
        """A table routing `service.name` values to slugs (`orgs` maps a slug to a non-default org)."""
        orgs = orgs or {}
        slugs = sorted(set(routes.values()))
        return RoutesTable.model_validate(
            {
                "version": 1,
                "routes": [
                    {"attribute": "service.name", "value": value, "project": f"{orgs.get(slug, ORG)}/{slug}"}
                    for value, slug in routes.items()
                ],
                "projects": {f"{orgs.get(slug, ORG)}/{slug}": self.endpoint(slug) for slug in slugs},
                "pending": [{"attribute": "service.name", "value": value} for value in pending],
                "unrouted": unrouted,
            }
        ).with_revision()


def trace_parts(
    table: RoutesTable, *services: str, spans: int = 3, resources: int = 1, tag: str = ""
) -> list[RoutedPart]:
    """One OTLP traces request with `resources` resources per service, split by `table` as a receiver would."""
    body = traces_request(
        *(resource_spans(s, spans=spans, tag=f"{tag}{r}-") for s in services for r in range(resources))
    ).SerializeToString()
    return split_request(Signal.TRACES, body, Router(table)).parts


def log_parts(table: RoutesTable, *services: str, records: int = 3, tag: str = "") -> list[RoutedPart]:
    body = logs_request(*(resource_logs(s, records=records, tag=tag) for s in services)).SerializeToString()
    return split_request(Signal.LOGS, body, Router(table)).parts


def sample(metrics: ForwarderMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


PipelineFactory = Callable[..., Awaitable[tuple[QueuePipeline, ForwarderMetrics]]]


@dataclass(frozen=True)
class Seen:
    """One request the scripted upstream answered."""

    signal: str
    headers: CIMultiDict[str]
    body: bytes
    status: int
    time: float  # time.monotonic() when answered
    peer: tuple[str, int] | None = None  # the client's address: the same one again means a reused connection


@dataclass
class Upstream:
    """A scripted ingest endpoint for what the emulator does not do: answers `script` first, then the defaults."""

    base: str = ""  # http://127.0.0.1:PORT
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers), in order
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base}/api/1/integration/otlp/v1/traces/"

    def endpoint(self, *, key: str = "0123456789abcdef0123456789abcdef") -> dict[str, str]:
        base = f"{self.base}/api/1/integration/otlp/v1"
        return {"id": "1", "tracesUrl": f"{base}/traces/", "logsUrl": f"{base}/logs/", "publicKey": key}

    def table(self, *services: str, key: str = "0123456789abcdef0123456789abcdef") -> RoutesTable:
        """`services` routed to project `acme/up` at this endpoint."""
        routes = [{"attribute": "service.name", "value": s, "project": "acme/up"} for s in services]
        return RoutesTable.model_validate(
            {"version": 1, "routes": routes, "projects": {"acme/up": self.endpoint(key=key)}}
        ).with_revision()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(self.delay)
        status, headers = self.script.pop(0) if self.script else (self.status, self.headers)
        signal = request.match_info["signal"]
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.seen.append(Seen(signal, CIMultiDict(request.headers), body, status, time.monotonic(), peer))
        return web.Response(status=status, headers=headers, body=self.body)

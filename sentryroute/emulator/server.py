"""`SentryEmulator`: builds the aiohttp application and runs it in-process, in a thread, or for the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from sentryroute.emulator import control, ingest, page, webapi
from sentryroute.emulator.config import EmulatorConfig
from sentryroute.emulator.context import CONTEXT_KEY, Context
from sentryroute.emulator.faults import Faults
from sentryroute.emulator.received import Received
from sentryroute.emulator.state import State
from sentryroute.emulator.webapi import serializers

# Big enough for any body the limit allows; the ingest handler streams and enforces `body_limit` itself.
_CLIENT_MAX_SIZE = 1 << 31


class _AccessLogger(AbstractAccessLogger):
    """Method, path and status only: query strings may carry `sentry_key`, and headers carry tokens."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.3fs", request.method, request.path, response.status, time)


class SentryEmulator:
    """A local Sentry stand-in: Web API subset, OTLP ingest, fault injection and a record of what arrived."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = State()
        self.received = Received(record_limit=self.config.record_limit)
        self.faults = Faults(self.state)
        self._context = Context(config=self.config, state=self.state, faults=self.faults, received=self.received)
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=_CLIENT_MAX_SIZE, middlewares=webapi.middlewares(self.config.path_prefix))
        app[CONTEXT_KEY] = self._context
        prefix = self.config.path_prefix
        app.add_routes(ingest.routes(prefix))
        app.add_routes(webapi.routes(prefix))
        app.add_routes(control.routes(prefix))
        app.add_routes(page.routes(prefix))
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # auto_decompress off: the ingest handler inflates itself, under the body limit (gzip bombs).
        runner = web.AppRunner(self.build_app(), auto_decompress=False, access_log_class=_AccessLogger)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self.host, self.port = host, int(runner.addresses[0][1])
        netloc_host = f"[{host}]" if ":" in host else host
        self._context.listen_netloc = f"{netloc_host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """Base URL the emulator serves (with the path prefix), e.g. `http://127.0.0.1:PORT`."""
        return f"http://{self._context.listen_netloc}{self.config.path_prefix}"

    @property
    def public_url(self) -> str:
        """Base URL written into DSNs (differs from `url` only with `public_host`)."""
        return self._context.base_url()

    def dsn(self, public_key: str) -> str:
        """The public DSN of a key, as the Web API reports it."""
        return serializers.public_dsn(self.state.keys[public_key], base_url=self.public_url)

    def otlp_url(self, project_id: str | int, signal: str = "traces") -> str:
        """The project's OTLP endpoint, e.g. `.../api/<pid>/integration/otlp/v1/traces`."""
        return f"{self.url}/api/{project_id}/integration/otlp/v1/{signal}"

    async def __aenter__(self) -> SentryEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[SentryEmulator]:
        """Serve from a daemon thread with its own event loop (sync tests, the demo)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="sentry-emulator", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(host, port), loop).result(timeout=30)
            yield self
        finally:
            try:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=30)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=30)
                loop.close()

"""An emulated Sentry (real sockets) with org `acme` and team `backend`, and a client with every scope."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from sentryroute_operator.provision import SentryApi, StaticToken

from sentryroute.emulator import EmulatorConfig, SentryEmulator

ALL_SCOPES = ["org:read", "project:read", "project:write", "project:admin"]


@pytest.fixture
async def emu() -> AsyncIterator[SentryEmulator]:
    async with SentryEmulator(EmulatorConfig(page_size=2)) as emulator:
        emulator.state.add_org("acme")
        emulator.state.add_team("acme", "backend")
        yield emulator


@pytest.fixture
async def api(emu: SentryEmulator) -> AsyncIterator[SentryApi]:
    token = emu.state.add_token(scopes=ALL_SCOPES)
    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token), retry_initial=0.01) as client:
        yield client


class ApiRequests:
    """The emulator's access log (method, decoded path, status): what actually reached Sentry."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        caplog.set_level(logging.INFO, logger="aiohttp.access")

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self._caplog.records if r.name == "aiohttp.access"]


@pytest.fixture
def api_requests(caplog: pytest.LogCaptureFixture) -> ApiRequests:
    return ApiRequests(caplog)

"""A canary token never shows up in exceptions, reprs, results or log lines, whatever goes wrong."""

from __future__ import annotations

import logging
import traceback

import pytest
from sentryroute_operator.provision import (
    AuthError,
    SentryApi,
    SentryApiError,
    StaticToken,
    TransientError,
    ensure_project,
)

from sentryroute.emulator import SentryEmulator

CANARY = "sntrys_CANARY_5f3a9c1e_do_not_log_me"


def _exposed(exc: BaseException) -> str:
    """Everything an operator might print about an exception."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.args)]
    if isinstance(exc, SentryApiError):
        parts.append(str(exc.detail))
    return "\n".join(parts)


async def test_canary_token_never_leaks(emu: SentryEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu.state.add_token(scopes=["org:read"], value=CANARY)
    emu.state.add_project("acme", "backend", "checkout")
    exposed: list[str] = []
    api = SentryApi(base_url=emu.url, org="acme", token=StaticToken(CANARY), retries=1, retry_initial=0.01)
    async with api:
        exposed += [repr(api), str(api), repr(StaticToken(CANARY))]
        with pytest.raises(AuthError) as forbidden:
            await api.create_project(team="backend", slug="new-one", name="new-one", platform="other")
        exposed.append(_exposed(forbidden.value))
        failed = await ensure_project(api, slug="new-one", team="backend", platform="other", create=True)
        exposed.append(repr(failed))

        emu.faults.api_rate_limit(path_regex=r"/organizations/acme/projects/", count=1, reset_in=0.0)
        await api.list_projects()  # 429 logged and waited

        emu.faults.api_fail(r"/organizations/acme/teams/", status=500, count=10)
        with pytest.raises(TransientError) as transient:
            await api.list_teams()
        exposed.append(_exposed(transient.value))

        emu.state.revoke_token(CANARY)
        with pytest.raises(AuthError) as unauthorized:
            await api.list_projects()
        exposed.append(_exposed(unauthorized.value))
        assert unauthorized.value.status == 401

    assert "Sentry rate limit" in caplog.text and "Forbidden" in caplog.text  # the log lines did happen
    for text in [*exposed, caplog.text]:
        assert CANARY not in text

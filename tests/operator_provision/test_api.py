"""SentryApi against the emulated Sentry: pagination, retries, rate limits, auth, hostile slugs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sentryroute_operator.provision import (
    AuthError,
    FileToken,
    InvalidSlug,
    SentryApi,
    StaticToken,
    TransientError,
    ensure_project,
)

from sentryroute.emulator import SentryEmulator

from .conftest import ALL_SCOPES, ApiRequests


async def test_pagination_walks_every_page(emu: SentryEmulator, api: SentryApi, api_requests: ApiRequests) -> None:
    for name in ("e", "a", "d", "c", "b"):
        emu.state.add_project("acme", "backend", f"proj-{name}")
    project = emu.state.project("acme", "proj-a")
    assert project is not None
    for i in range(4):
        emu.state.add_key("acme", "proj-a", name=f"extra-{i}")

    projects = await api.list_projects()
    keys = await api.list_keys("proj-a")
    teams = await api.list_teams()

    assert [p.slug for p in projects] == ["proj-a", "proj-b", "proj-c", "proj-d", "proj-e"]
    assert projects[0].id == project.id and projects[0].teams == ("backend",)
    assert sorted(k.name for k in keys) == ["Default", "extra-0", "extra-1", "extra-2", "extra-3"]
    assert teams == ["backend"]
    lines = api_requests.lines()
    assert sum("/organizations/acme/projects/ 200" in line for line in lines) == 3  # 2 + 2 + 1
    assert sum("/projects/acme/proj-a/keys/ 200" in line for line in lines) == 3


async def test_5xx_is_retried_then_succeeds(emu: SentryEmulator, api: SentryApi) -> None:
    emu.state.add_project("acme", "backend", "checkout")
    emu.faults.api_fail(r"/projects/acme/checkout/keys/", status=502, count=3)
    keys = await api.list_keys("checkout")
    assert [k.name for k in keys] == ["Default"]


async def test_persistent_5xx_is_transient_never_missing(emu: SentryEmulator) -> None:
    token = emu.state.add_token(scopes=ALL_SCOPES)
    emu.faults.api_fail(r"/projects/acme/checkout/", status=503, count=1000)
    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token), retries=2, retry_initial=0.01) as api:
        with pytest.raises(TransientError, match="503"):
            await api.find_project("checkout")
        with pytest.raises(TransientError):
            await ensure_project(api, slug="checkout", team="backend", platform="other", create=True)
    assert emu.state.project("acme", "checkout") is None  # never taken as "missing, create it"


async def test_connection_refused_is_transient() -> None:
    api = SentryApi(
        base_url="http://127.0.0.1:9", org="acme", token=StaticToken("t0ken"), retries=1, retry_initial=0.01
    )
    async with api:
        with pytest.raises(TransientError, match="after 2 attempts"):
            await api.list_projects()


async def test_429_waits_for_reset_without_blocking_other_clients(emu: SentryEmulator, api: SentryApi) -> None:
    emu.state.add_project("acme", "backend", "checkout")
    other_token = emu.state.add_token(scopes=ALL_SCOPES)
    emu.faults.api_rate_limit(path_regex=r"/projects/acme/checkout/keys/", count=1, reset_in=1.0)

    async def timed(coro: object) -> float:
        start = time.monotonic()
        await coro  # type: ignore[misc]
        return time.monotonic() - start

    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(other_token)) as other:
        limited = asyncio.create_task(timed(api.list_keys("checkout")))
        await asyncio.sleep(0.2)  # let the 429 land first
        other_took = await timed(other.list_projects())
        limited_took = await limited
    # The reset header is whole epoch seconds, ceil(now + 1): the wait is between 1 and 2 s.
    assert 0.9 <= limited_took < 5
    assert other_took < 0.8  # the other client did not wait for this one's limit


async def test_429_wait_is_clamped_and_shared_by_the_client(emu: SentryEmulator) -> None:
    emu.state.add_project("acme", "backend", "checkout")
    token = emu.state.add_token(scopes=ALL_SCOPES)
    emu.faults.api_rate_limit(path_regex=r"/projects/acme/checkout/keys/", count=1, reset_in=3600)
    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token), max_rate_limit_wait=1.0) as api:
        start = time.monotonic()
        limited = asyncio.create_task(api.list_keys("checkout"))
        await asyncio.sleep(0.3)
        # Another call through the same client, sent after the 429, waits at the gate too.
        await api.list_projects()
        gated_took = time.monotonic() - start
        await limited
        took = time.monotonic() - start
    assert 0.9 <= took < 5  # clamped to 1 s, not an hour
    assert gated_took >= 0.9


async def test_429_beyond_the_wait_budget_is_transient(emu: SentryEmulator) -> None:
    token = emu.state.add_token(scopes=ALL_SCOPES)
    emu.faults.api_rate_limit(path_regex=r"/organizations/acme/projects/", count=100, reset_in=0.2)
    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token), max_rate_limit_wait=1.5) as api:
        with pytest.raises(TransientError, match="rate limited"):
            await api.list_projects()


async def test_401_rereads_the_token_file(emu: SentryEmulator, tmp_path: Path) -> None:
    old = emu.state.add_token(scopes=ALL_SCOPES)
    token_file = tmp_path / "token"
    token_file.write_text(old + "\n")
    async with SentryApi(base_url=emu.url, org="acme", token=FileToken(token_file)) as api:
        assert await api.list_projects() == []
        new = emu.state.add_token(scopes=ALL_SCOPES)
        token_file.write_text(new)
        emu.state.revoke_token(old)
        assert await api.list_projects() == []  # 401 → refresh → retried with the new token
        emu.state.revoke_token(new)
        with pytest.raises(AuthError, match="401") as info:
            await api.list_projects()
    assert info.value.missing_scope == "org:read"


async def test_403_names_the_scope(emu: SentryEmulator) -> None:
    emu.state.add_project("acme", "backend", "checkout")
    token = emu.state.add_token(scopes=["org:read"])
    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token)) as api:
        with pytest.raises(AuthError, match="project:write") as info:
            await api.create_project(team="backend", slug="new-one", name="new-one", platform="other")
        assert info.value.status == 403 and info.value.missing_scope == "project:write"
        with pytest.raises(AuthError, match="project:read"):
            await api.list_keys("checkout")
        with pytest.raises(AuthError, match="project:admin"):
            await api.delete_project("checkout")
        result = await ensure_project(api, slug="new-one", team="backend", platform="other", create=True)
    assert result.state == "Failed" and result.reason == "Forbidden" and "project:write" in result.message


@pytest.mark.parametrize(
    "hostile", ["../../x", "a?b=c", "checkout/../../members", "ünïcode", "x" * 300, "1234", "a#b", "%2e%2e"]
)
async def test_hostile_slugs_never_reach_sentry(api: SentryApi, api_requests: ApiRequests, hostile: str) -> None:
    with pytest.raises(InvalidSlug):
        await api.list_keys(hostile)
    with pytest.raises(InvalidSlug):
        await api.find_project(hostile)
    with pytest.raises(InvalidSlug):
        await api.create_project(team=hostile, slug="fine", name="fine", platform="other")
    with pytest.raises(InvalidSlug):
        await api.delete_project(hostile)
    result = await ensure_project(api, slug=hostile, team="backend", platform="other", create=True)
    assert result.state == "Failed" and result.reason == "InvalidSlug"
    assert api_requests.lines() == []  # validated before any request


def test_hostile_org_rejected() -> None:
    for org in ("../acme", "acme?x=1", "acme/"):
        with pytest.raises(InvalidSlug):
            SentryApi(base_url="https://sentry.io", org=org, token=StaticToken("t0ken"))


async def test_web_api_answers_and_rate_limit_waits_are_counted(emu: SentryEmulator, api: SentryApi) -> None:
    """What the dashboard's "Sentry Web API" panels and the WebApiRateLimited alert read."""
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"org": "acme", **labels}) or 0.0

    before = (sample("sentryroute_sentry_api_responses_total", status="429"),
              sample("sentryroute_sentry_api_responses_total", status="200"),
              sample("sentryroute_sentry_api_rate_limited_seconds_total"))  # fmt: skip
    emu.state.add_project("acme", "backend", "checkout")
    emu.faults.api_rate_limit(path_regex=r"/projects/acme/checkout/keys/", count=1, reset_in=1.0)
    await api.list_keys("checkout")
    assert sample("sentryroute_sentry_api_responses_total", status="429") == before[0] + 1
    assert sample("sentryroute_sentry_api_responses_total", status="200") >= before[1] + 1
    assert sample("sentryroute_sentry_api_rate_limited_seconds_total") - before[2] >= 0.5

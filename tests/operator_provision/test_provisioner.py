"""ensure_project against the emulated Sentry: adopt, create, 409 handling, key choice and endpoint URLs."""

from __future__ import annotations

import logging

import pytest
from sentryroute_operator.provision import SentryApi, StaticToken, TransientError, ensure_project

from sentryroute.emulator import EmulatorConfig, SentryEmulator

from .conftest import ALL_SCOPES


async def test_adopts_an_existing_project(
    emu: SentryEmulator, api: SentryApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sentryroute_operator")
    project = emu.state.add_project("acme", "backend", "checkout")
    key = emu.state.project_keys(project.id)[0]

    result = await ensure_project(
        api, slug="checkout", team="backend", platform="python", create=True, value="checkout-svc"
    )

    assert (result.state, result.created, result.reason) == ("Ready", False, "Adopted")
    assert (result.value, result.slug, result.project_id) == ("checkout-svc", "checkout", project.id)
    assert result.endpoint is not None and result.endpoint.publicKey == key.public
    assert result.endpoint.tracesUrl == emu.otlp_url(project.id, "traces")  # Sentry's dsn.otlp_traces, as given
    assert result.endpoint.logsUrl == emu.otlp_url(project.id, "logs")
    assert len(emu.state.projects("acme")) == 1
    assert "Adopted Sentry project acme/checkout" in caplog.text


async def test_known_listing_skips_the_lookup(emu: SentryEmulator, api: SentryApi) -> None:
    emu.state.add_project("acme", "backend", "checkout")
    known = {p.slug: p for p in await api.list_projects()}
    emu.faults.api_fail(r"/projects/acme/checkout/$", status=500, count=100)  # a lookup would now fail
    result = await ensure_project(api, slug="checkout", team=None, platform="other", create=False, known=known)
    assert result.state == "Ready"


async def test_creates_with_explicit_slug_and_no_default_rules(emu: SentryEmulator, api: SentryApi) -> None:
    slug = "a-very-long-service-name-" + "x" * 60  # 85 characters: the name is cut to 50, the slug is not
    result = await ensure_project(api, slug=slug, team="backend", platform="python", create=True)

    assert (result.state, result.created, result.reason) == ("Ready", True, "Created")
    project = emu.state.project("acme", slug)
    assert project is not None and project.id == result.project_id
    assert project.default_rules is False
    assert project.name == slug[:50] and project.platform == "python" and project.teams == ["backend"]
    assert result.endpoint is not None


async def test_missing_project_without_create_or_team(emu: SentryEmulator, api: SentryApi) -> None:
    result = await ensure_project(api, slug="nope", team="backend", platform="other", create=False)
    assert (result.state, result.reason) == ("Failed", "NotFound")
    result = await ensure_project(api, slug="nope", team=None, platform="other", create=True)
    assert (result.state, result.reason) == ("Failed", "NoTeam")
    result = await ensure_project(api, slug="nope", team="frontend", platform="other", create=True)
    assert (result.state, result.reason) == ("Failed", "TeamNotFound")
    assert emu.state.projects("acme") == []


async def test_409_adopts_the_winner(emu: SentryEmulator, api: SentryApi) -> None:
    # Someone else creates the project between our lookup (faked 404) and our create.
    project = emu.state.add_project("acme", "backend", "checkout")
    emu.faults.api_fail(r"/projects/acme/checkout/$", status=404, count=1)
    result = await ensure_project(api, slug="checkout", team="backend", platform="other", create=True)
    assert (result.state, result.created, result.project_id) == ("Ready", False, project.id)


async def test_409_on_a_deleted_projects_slug_is_slug_reserved(emu: SentryEmulator, api: SentryApi) -> None:
    emu.state.add_project("acme", "backend", "checkout")
    emu.state.delete_project("acme", "checkout")
    result = await ensure_project(api, slug="checkout", team="backend", platform="other", create=True)
    assert (result.state, result.reason, result.created) == ("Failed", "SlugReserved", False)
    assert result.endpoint is None


async def test_key_choice(emu: SentryEmulator, api: SentryApi) -> None:
    project = emu.state.add_project("acme", "backend", "checkout")
    default = emu.state.project_keys(project.id)[0]
    other = emu.state.add_key("acme", "checkout", name="Brave Otter")

    async def chosen() -> str | None:
        result = await ensure_project(api, slug="checkout", team=None, platform="other", create=False)
        return result.endpoint.publicKey if result.endpoint else None

    assert await chosen() == default.public  # the oldest active key
    assert await chosen() == default.public  # stable
    named = emu.state.add_key("acme", "checkout", name="sentryroute")
    assert await chosen() == named.public
    emu.state.set_key_active(named.public, False)
    emu.state.set_key_active(default.public, False)
    assert await chosen() == other.public  # inactive keys are skipped
    emu.state.set_key_active(other.public, False)
    result = await ensure_project(api, slug="checkout", team=None, platform="other", create=False)
    assert (result.state, result.reason, result.endpoint) == ("Failed", "NoActiveKey", None)


async def test_derived_urls_keep_port_and_path_prefix() -> None:
    async with SentryEmulator(EmulatorConfig(omit_otlp_dsn=True, path_prefix="/sentry")) as emu:
        emu.state.add_org("acme")
        emu.state.add_team("acme", "backend")
        project = emu.state.add_project("acme", "backend", "checkout")
        token = emu.state.add_token(scopes=ALL_SCOPES)
        assert emu.url.endswith(f":{emu.port}/sentry")
        async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token)) as api:
            result = await ensure_project(api, slug="checkout", team=None, platform="other", create=False)
    assert result.endpoint is not None
    assert result.endpoint.tracesUrl == f"{emu.url}/api/{project.id}/integration/otlp/v1/traces/"
    assert result.endpoint.logsUrl == f"{emu.url}/api/{project.id}/integration/otlp/v1/logs/"


async def test_keys_unavailable_after_create_keeps_created(emu: SentryEmulator) -> None:
    token = emu.state.add_token(scopes=ALL_SCOPES)
    emu.faults.api_fail(r"/projects/acme/fresh/keys/", status=500, count=100)
    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token), retries=1, retry_initial=0.01) as api:
        result = await ensure_project(api, slug="fresh", team="backend", platform="other", create=True)
        assert (result.state, result.created, result.reason) == ("Creating", True, "KeysUnavailable")
        with pytest.raises(TransientError):  # a later pass adopts; key errors then propagate
            await ensure_project(api, slug="fresh", team="backend", platform="other", create=True)


async def test_org_wide_key_listing_replaces_per_project_calls(emu: SentryEmulator, api: SentryApi) -> None:
    projects = [emu.state.add_project("acme", "backend", f"svc-{i}") for i in range(3)]
    named = emu.state.add_key("acme", "svc-1", name="sentryroute")
    keys = await api.list_org_keys()  # 4 keys over 2 pages
    assert sorted(keys) == sorted(p.id for p in projects)
    emu.faults.api_fail(r"/keys/$", status=500, count=100)  # a per-project listing would now fail
    known = {p.slug: p for p in await api.list_projects()}
    result = await ensure_project(api, slug="svc-1", team=None, platform="other", create=False, known=known, keys=keys)
    assert result.state == "Ready" and result.endpoint is not None and result.endpoint.publicKey == named.public


async def test_slug_over_an_old_instances_limit_is_rejected() -> None:
    async with SentryEmulator(EmulatorConfig(max_slug_length=50)) as emu:
        emu.state.add_org("acme")
        emu.state.add_team("acme", "backend")
        token = emu.state.add_token(scopes=ALL_SCOPES)
        async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token)) as api:
            result = await ensure_project(api, slug="s" * 60, team="backend", platform="other", create=True)
    assert (result.state, result.reason) == ("Failed", "Rejected")
    assert "slug" in result.message


async def test_a_create_whose_answer_was_lost_is_recognised_as_ours(emu: SentryEmulator, api: SentryApi) -> None:
    # Sentry creates the project, but a proxy answers 502: the retry gets 409 for the project our first try made.
    emu.faults.api_fail(r"/teams/acme/backend/projects/$", status=502, count=1, answer_lost=True)
    result = await ensure_project(api, slug="checkout", team="backend", platform="other", create=True)
    assert (result.state, result.created) == ("Ready", True)
    assert len(emu.state.projects("acme")) == 1


async def test_a_create_with_every_answer_lost_is_ours_when_found_later(emu: SentryEmulator) -> None:
    token = emu.state.add_token(scopes=ALL_SCOPES)
    async with SentryApi(base_url=emu.url, org="acme", token=StaticToken(token), retries=1, retry_initial=0.01) as api:
        emu.faults.api_fail(r"/teams/acme/backend/projects/$", status=504, count=2, answer_lost=True)
        with pytest.raises(TransientError):
            await ensure_project(api, slug="checkout", team="backend", platform="other", create=True)
        assert emu.state.project("acme", "checkout") is not None  # created after all
        again = await ensure_project(api, slug="checkout", team="backend", platform="other", create=True)
        assert (again.state, again.created) == ("Ready", True)


async def test_a_project_someone_else_made_is_still_adopted(emu: SentryEmulator, api: SentryApi) -> None:
    emu.state.add_project("acme", "backend", "checkout")  # exists before we try: a 409 without a lost answer
    known: dict = {}  # a stale listing: the create is attempted
    emu.faults.api_fail(r"/projects/acme/checkout/$", status=404, count=1)
    result = await ensure_project(api, slug="checkout", team="backend", platform="other", create=True, known=known)
    assert (result.state, result.created) == ("Ready", False)

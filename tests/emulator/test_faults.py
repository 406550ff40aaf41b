"""Fault injection: ingest quotas (reference §3), failures, delays, accept-then-drop, Web API faults."""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp

from tests.emulator.conftest import PROTOBUF, Seeded, logs_request, traces_request

# quota_limit = retry_after ":" categories ":" scope [":" reason_code]
QUOTA_ITEM = re.compile(r"^\d+:[a-z_;]*:(organization|project|key)(:[A-Za-z0-9_]*)?$")


async def send(seeded: Seeded, http: aiohttp.ClientSession, signal: str, project_id: str | None = None, key=None):
    """POST one small request; returns (status, headers, json body or None)."""
    pid = project_id or seeded.checkout.id
    request = traces_request() if signal == "traces" else logs_request()
    headers = {"Content-Type": PROTOBUF, **seeded.sentry_auth(key)}
    async with http.post(seeded.emu.otlp_url(pid, signal), data=request.SerializeToString(), headers=headers) as resp:
        raw = await resp.read()
        return resp.status, resp.headers, json.loads(raw) if raw else None


def quota(value: str, *, seconds: int) -> list[str]:
    """Check the header grammar and that each retry_after is close to `seconds`; return items without it."""
    items = [item.strip() for item in value.split(",")]
    assert all(QUOTA_ITEM.match(item) for item in items), value
    for item in items:
        assert seconds - 10 < int(item.split(":")[0]) <= seconds, value  # generous: tests run under load
    return [item.split(":", 1)[1] for item in items]


async def test_rate_limit_header_grammar_and_expiry(seeded: Seeded, http: aiohttp.ClientSession):
    faults = seeded.emu.faults
    faults.rate_limit(seeded.checkout.id, seconds=30, categories="span;span_indexed", reason_code="quota")
    status, headers, body = await send(seeded, http, "traces")
    assert status == 429
    assert body["detail"].startswith("Sentry dropped data due to a quota")
    assert quota(headers["X-Sentry-Rate-Limits"], seconds=30) == ["span;span_indexed:project:quota"]
    assert 20 < int(headers["Retry-After"]) <= 30
    assert seeded.emu.received.spans(seeded.checkout.id) == []
    # Logs are not limited by a span quota; other projects are not limited at all.
    assert (await send(seeded, http, "logs"))[0] == 202
    payments_key = seeded.emu.state.project_keys(seeded.payments.id)[0].public
    assert (await send(seeded, http, "traces", seeded.payments.id, payments_key))[0] == 202
    faults.clear()
    faults.rate_limit(seeded.checkout.id, seconds=0.5)
    deadline = time.monotonic() + 10
    while (await send(seeded, http, "traces"))[0] == 429:
        assert time.monotonic() < deadline, "the rate limit never expired"
        await asyncio.sleep(0.1)
    assert len(seeded.emu.received.spans(seeded.checkout.id)) == 1


async def test_traces_429_on_any_limit_logs_only_on_log_limits(seeded: Seeded, http: aiohttp.ClientSession):
    faults = seeded.emu.faults
    faults.rate_limit(seeded.checkout.id, seconds=30, categories="log_item;log_byte")
    status, headers, _ = await send(seeded, http, "traces")
    assert status == 429  # traces answer 429 for any active limit of the project (check_rate_limits)
    assert quota(headers["X-Sentry-Rate-Limits"], seconds=30) == ["log_item;log_byte:project"]
    assert (await send(seeded, http, "logs"))[0] == 429
    faults.clear()
    faults.rate_limit(seeded.checkout.id, seconds=30, categories="span")
    assert (await send(seeded, http, "logs"))[0] == 202  # logs ignore limits that do not cover logs
    faults.clear()
    faults.rate_limit(seeded.checkout.id, seconds=30, categories="", retry_after_header=False)
    status, headers, _ = await send(seeded, http, "logs")
    assert status == 429 and "Retry-After" not in headers
    assert quota(headers["X-Sentry-Rate-Limits"], seconds=30) == [":project"]


async def test_organization_scope_limits_every_project(seeded: Seeded, http: aiohttp.ClientSession):
    seeded.emu.faults.rate_limit(seeded.checkout.id, seconds=60, scope="organization")
    payments_key = seeded.emu.state.project_keys(seeded.payments.id)[0].public
    status, headers, _ = await send(seeded, http, "logs", seeded.payments.id, payments_key)
    assert status == 429
    assert quota(headers["X-Sentry-Rate-Limits"], seconds=60) == [":organization"]
    assert 50 < int(headers["Retry-After"]) <= 60


async def test_bare_429_has_no_headers(seeded: Seeded, http: aiohttp.ClientSession):
    seeded.emu.faults.rate_limit_bare(seeded.checkout.id, count=2)
    for _ in range(2):
        status, headers, body = await send(seeded, http, "traces")
        assert status == 429 and body is not None
        assert "Retry-After" not in headers and "X-Sentry-Rate-Limits" not in headers
    assert (await send(seeded, http, "traces"))[0] == 202


async def test_fail_by_count_and_by_time(seeded: Seeded, http: aiohttp.ClientSession):
    faults = seeded.emu.faults
    faults.fail(seeded.checkout.id, count=2)
    assert [(await send(seeded, http, "traces"))[0] for _ in range(3)] == [503, 503, 202]
    faults.fail(seeded.checkout.id, status=503, count=1)
    status, _, body = await send(seeded, http, "logs")
    assert (status, body) == (503, {"detail": "failed to queue envelope"})
    faults.fail(seeded.checkout.id, status=500, seconds=1.0)
    assert (await send(seeded, http, "traces"))[0] == 500
    deadline = time.monotonic() + 10
    while (await send(seeded, http, "traces"))[0] == 500:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    faults.fail(None, status=400)
    assert (await send(seeded, http, "traces"))[0] == 400
    faults.clear()
    assert (await send(seeded, http, "traces"))[0] == 202


async def test_delay_slows_responses(seeded: Seeded, http: aiohttp.ClientSession):
    seeded.emu.faults.delay(seeded.checkout.id, seconds=0.5)
    started = time.monotonic()
    assert (await send(seeded, http, "traces"))[0] == 202
    assert time.monotonic() - started >= 0.5
    seeded.emu.faults.clear()
    assert (await send(seeded, http, "traces"))[0] == 202


async def test_accept_then_drop_for_a_new_key(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    emu.faults.accept_then_drop(seeded.checkout.id, seconds=1.5)
    new_key = emu.state.add_key("acme", "checkout", name="brand-new").public
    status, _, body = await send(seeded, http, "traces", key=new_key)
    assert (status, body) == (202, None)
    assert emu.received.spans(seeded.checkout.id) == []
    assert emu.received.dropped(seeded.checkout.id) == 1
    deadline = time.monotonic() + 10
    while not emu.received.spans(seeded.checkout.id):
        assert time.monotonic() < deadline, "the key never became effective"
        await asyncio.sleep(0.1)
        assert (await send(seeded, http, "traces", key=new_key))[0] == 202


async def test_web_api_injected_429_and_failure(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    url = f"{emu.url}/api/0/organizations/acme/projects/"
    emu.faults.api_rate_limit(path_regex="/projects/$", count=1, reset_in=2.0)
    async with http.get(url, headers=seeded.auth()) as resp:
        assert resp.status == 429
        assert "Retry-After" not in resp.headers
        reset = int(resp.headers["X-Sentry-Rate-Limit-Reset"])
        assert time.time() < reset <= time.time() + 4
        assert resp.headers["X-Sentry-Rate-Limit-Remaining"] == "0"
        assert (await resp.json())["detail"].startswith("You are attempting to use this endpoint too frequently")
    async with http.get(url, headers=seeded.auth()) as resp:
        assert resp.status == 200
    emu.faults.api_fail("organizations/acme/teams/", status=502, count=1)
    async with http.get(f"{emu.url}/api/0/organizations/acme/teams/", headers=seeded.auth()) as resp:
        assert resp.status == 502 and "detail" in await resp.json()
    async with http.get(f"{emu.url}/api/0/organizations/acme/teams/", headers=seeded.auth()) as resp:
        assert resp.status == 200


async def test_faults_through_the_control_api(seeded: Seeded, http: aiohttp.ClientSession):
    control = f"{seeded.emu.url}/_emulator/api"
    fault = {"project_id": seeded.checkout.id, "seconds": 30, "categories": "span"}
    async with http.post(f"{control}/faults/rate_limit", json=fault) as resp:
        assert resp.status == 204
    assert (await send(seeded, http, "traces"))[0] == 429
    async with http.post(f"{control}/faults/rate_limit", json={"project_id": 1, "bogus": 1}) as resp:
        assert resp.status == 400
    async with http.post(f"{control}/faults/explode", json={}) as resp:
        assert resp.status == 404
    async with http.post(f"{control}/faults/clear") as resp:
        assert resp.status == 204
    assert (await send(seeded, http, "traces"))[0] == 202

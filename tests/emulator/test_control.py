"""The HTTP control API and the HTML page: seeding, inspection, reset, and escaping of untrusted names."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from sentryroute.emulator import SentryEmulator
from tests.emulator.conftest import PROTOBUF, Seeded, StartEmulator, logs_request, traces_request


async def call(http: aiohttp.ClientSession, method: str, url: str, body: dict | None = None):
    async with http.request(method, url, json=body) as resp:
        return resp.status, (await resp.json() if resp.content_type == "application/json" else None)


async def ingest(emu: SentryEmulator, http: aiohttp.ClientSession, pid: str, key: str, body: bytes, signal="traces"):
    headers = {"Content-Type": PROTOBUF, "x-sentry-auth": f"sentry sentry_key={key}"}
    async with http.post(emu.otlp_url(pid, signal), data=body, headers=headers) as resp:
        return resp.status, resp.headers


async def test_seed_inspect_and_reset_over_http(http: aiohttp.ClientSession):
    async with SentryEmulator() as emu:
        api = f"{emu.url}/_emulator/api"
        assert (await call(http, "POST", f"{api}/orgs", {"slug": "acme"}))[0] == 201
        assert (await call(http, "POST", f"{api}/teams", {"org": "acme", "slug": "backend"}))[0] == 201
        status, project = await call(http, "POST", f"{api}/projects", {"org": "acme", "team": "backend", "slug": "web"})
        assert status == 201 and project["keys"][0]["dsn"].endswith(f"/{project['id']}")
        assert (await call(http, "POST", f"{api}/projects", {"org": "acme", "team": "backend", "slug": "web"}))[
            0
        ] == 409
        assert (await call(http, "POST", f"{api}/projects", {"org": "acme", "team": "nope", "slug": "x"}))[0] == 404
        status, body = await call(http, "POST", f"{api}/projects", {"org": "acme"})
        assert (status, body) == (400, {"detail": "missing field 'team'"})
        status, key = await call(http, "POST", f"{api}/keys", {"org": "acme", "project": "web", "name": "sentryroute"})
        assert status == 201 and len(key["public"]) == 32
        status, token = await call(http, "POST", f"{api}/tokens", {"scopes": ["org:read"], "value": "sntrys_test"})
        assert (status, token["token"]) == (201, "sntrys_test")
        assert emu.state.tokens["sntrys_test"] == frozenset({"org:read"})

        assert (await ingest(emu, http, project["id"], key["public"], traces_request("web-svc").SerializeToString()))[
            0
        ] == 202
        assert (await ingest(emu, http, project["id"], key["public"], b"\xff\xff"))[0] == 202
        status, received = await call(http, "GET", f"{api}/received")
        (report,) = received["projects"]
        assert report["slug"] == "web" and report["org"] == "acme"
        assert (report["spans"], report["logs"], report["invalid"], report["dropped"]) == (1, 0, 1, 0)
        assert report["service_names"] == ["web-svc"]
        assert report["requests"] == {"total": 2, "by_status": {"202": 2}}
        assert "items" not in report
        _, full = await call(http, "GET", f"{api}/received?full=1")
        assert full["projects"][0]["items"]["spans"][0]["service_name"] == "web-svc"

        assert (await call(http, "DELETE", f"{api}/projects/acme/web"))[0] == 204
        assert emu.state.project("acme", "web") is None
        assert (await call(http, "DELETE", f"{api}/projects/acme/web"))[0] == 404
        assert (await call(http, "POST", f"{api}/reset"))[0] == 204
        assert emu.state.orgs == {} and emu.received.requests() == []


async def test_page_lists_everything_escaped(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    hostile = "<script>alert('x')</script>"
    assert (await ingest(emu, http, seeded.checkout.id, seeded.key, logs_request(hostile).SerializeToString(), "logs"))[
        0
    ] == 202
    for path in ("/", "/_emulator/"):
        async with http.get(emu.url + path) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            page = await resp.text()
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
        assert seeded.key in page and "checkout" in page and "payments" in page
        assert 'http-equiv="refresh"' in page
        secret = emu.state.keys[seeded.key].secret
        assert secret not in page and seeded.token not in page


async def test_new_keys_warm_up_and_announced_limits(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(new_key_drop_seconds=1.0, record_limit=2)
    emu, pid = seeded.emu, seeded.checkout.id
    body = traces_request(spans=3).SerializeToString()
    fresh = emu.state.add_key("acme", "checkout", name="fresh").public
    assert (await ingest(emu, http, pid, fresh, body))[0] == 202
    assert emu.received.dropped(pid) == 1 and emu.received.span_count(pid) == 0
    # The seeded key leaves its warm-up soon: poll instead of sleeping a fixed time.
    deadline = time.monotonic() + 10
    while emu.received.span_count(pid) == 0:
        assert time.monotonic() < deadline, "the key never left its warm-up"
        assert (await ingest(emu, http, pid, seeded.key, body))[0] == 202
        await asyncio.sleep(0.05)
    assert emu.received.span_count(pid) == 3 and len(emu.received.spans(pid)) == 2  # record_limit=2
    emu.faults.rate_limit(pid, seconds=30, categories="span", enforce=False)
    status, headers = await ingest(emu, http, pid, seeded.key, body)
    assert status == 202 and headers["X-Sentry-Rate-Limits"].split(":", 1)[1] == "span:project"
    assert emu.received.span_count(pid) == 6


async def test_control_api_index_lists_every_endpoint_and_fault(http: aiohttp.ClientSession):
    """The banner prints `/_emulator/api/`: it answers a map of what is there, and every entry really answers."""
    async with SentryEmulator() as emu:
        status, body = await call(http, "GET", f"{emu.url}/_emulator/api/")
        assert status == 200
        listed = {(e["method"], e["path"].rsplit("/_emulator/api/", 1)[1]) for e in body["endpoints"]}
        assert ("GET", "received") in listed and ("POST", "faults/{kind}") in listed
        assert set(body["faults"]) == set(emu.faults.KINDS) and all(body["faults"].values())
        assert (await call(http, "GET", f"{emu.url}/_emulator/api"))[0] == 200
        for method, path in listed:  # each listed route exists: no 405, and a 404 only as a JSON `detail`
            concrete = path.replace("{org}", "acme").replace("{slug}", "none").replace("{kind}", "clear")
            status, answer = await call(http, method, f"{emu.url}/_emulator/api/{concrete}", {})
            assert status != 405 and (status != 404 or "detail" in answer), (method, path, status)

"""Web API conformance (reference §1): auth and scopes, pagination, project create, keys, rate limits."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp

from tests.emulator.conftest import Seeded, StartEmulator

LINK_ITEM = re.compile(
    r'<(?P<url>[^>]*)>; rel="(?P<rel>previous|next)"; results="(?P<results>true|false)"; cursor="(?P<cursor>[^"]*)"'
)


async def get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, Any, Any]:
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def create(http: aiohttp.ClientSession, seeded: Seeded, body: Any, team: str = "backend", token=None):
    url = f"{seeded.emu.url}/api/0/teams/acme/{team}/projects/"
    async with http.post(url, json=body, headers=seeded.auth(token)) as resp:
        return resp.status, await resp.json()


def parse_link(header: str) -> dict[str, dict[str, str]]:
    links = {m["rel"]: m.groupdict() for m in LINK_ITEM.finditer(header)}
    assert set(links) == {"previous", "next"}, header
    return links


async def test_pagination_walk_with_page_size_two(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(page_size=2)
    for slug in ("alpha", "delta", "echo"):
        seeded.emu.state.add_project("acme", "backend", slug)
    url = f"{seeded.emu.url}/api/0/organizations/acme/projects/"
    slugs, pages, cursor = [], [], None
    while True:
        status, body, headers = await get(http, url + (f"?cursor={cursor}" if cursor else ""), seeded.auth())
        assert status == 200
        links = parse_link(headers["Link"])
        pages.append(links)
        slugs += [p["slug"] for p in body]
        if links["next"]["results"] != "true":
            break
        cursor = links["next"]["cursor"]
    assert slugs == ["alpha", "checkout", "delta", "echo", "payments"]
    assert len(pages) == 3
    first, last = pages[0], pages[-1]
    assert first["previous"] == {
        "url": f"{seeded.emu.url}/api/0/organizations/acme/projects/?&cursor=0:0:1",
        "rel": "previous",
        "results": "false",
        "cursor": "0:0:1",
    }
    assert (first["next"]["cursor"], first["next"]["results"]) == ("0:2:0", "true")
    assert (last["previous"]["cursor"], last["previous"]["results"]) == ("0:2:1", "true")
    assert (last["next"]["cursor"], last["next"]["results"]) == ("0:6:0", "false")
    # Other query parameters are kept in the links; per_page overrides the page size.
    status, body, headers = await get(http, url + "?per_page=1&query=a", seeded.auth())
    assert len(body) == 1
    assert parse_link(headers["Link"])["next"]["url"].endswith("/projects/?per_page=1&query=a&cursor=0:1:0")
    assert (await get(http, url + "?per_page=101", seeded.auth()))[0] == 400
    assert (await get(http, url + "?cursor=bogus", seeded.auth()))[0] == 400


async def test_project_list_query_and_active_only(seeded: Seeded, http: aiohttp.ClientSession):
    url = f"{seeded.emu.url}/api/0/organizations/acme/projects/"
    status, body, _ = await get(http, url + "?query=slug:payments", seeded.auth())
    assert [p["slug"] for p in body] == ["payments"]
    assert body[0]["id"] == seeded.payments.id and isinstance(body[0]["id"], str)
    assert body[0]["teams"] == [{"id": body[0]["teams"][0]["id"], "slug": "backend", "name": "backend"}]
    assert (await get(http, url + "?query=check", seeded.auth()))[1][0]["slug"] == "checkout"
    assert (await get(http, url + "?query=nope:1", seeded.auth()))[1] == []
    seeded.emu.state.delete_project("acme", "payments")
    assert [p["slug"] for p in (await get(http, url, seeded.auth()))[1]] == ["checkout"]
    status, body, _ = await get(http, url + "?statsPeriod=2h", seeded.auth())
    assert status == 400 and "stats_period" in body["error"]["params"]


async def test_auth_and_scopes(seeded: Seeded, http: aiohttp.ClientSession):
    emu, url = seeded.emu, f"{seeded.emu.url}/api/0/organizations/acme/projects/"
    status, body, _ = await get(http, url, {})
    assert (status, body) == (401, {"detail": "Authentication credentials were not provided."})
    status, body, _ = await get(http, url, {"Authorization": "Bearer wrong"})
    assert (status, body) == (401, {"detail": "Invalid token"})
    status, _, _ = await get(http, url, {"Authorization": f"Bearer {seeded.key}"})  # DSN keys are not tokens
    assert status == 401
    project_only = emu.state.add_token(scopes=["project:read"])
    status, body, _ = await get(http, url, seeded.auth(project_only))
    assert (status, body) == (403, {"detail": "You do not have permission to perform this action."})
    assert (await get(http, f"{emu.url}/api/0/projects/acme/checkout/", seeded.auth(project_only)))[0] == 200
    org_only = emu.state.add_token(scopes=["org:read"])
    assert (await get(http, f"{emu.url}/api/0/projects/acme/checkout/keys/", seeded.auth(org_only)))[0] == 403
    assert (await create(http, seeded, {"name": "x"}, token=project_only))[0] == 403
    assert (await get(http, f"{emu.url}/api/0/organizations/nope/projects/", seeded.auth()))[0] == 404
    emu.state.revoke_token(seeded.token)
    assert (await get(http, url, seeded.auth()))[0] == 401


async def test_id_or_slug_addressing(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    org = emu.state.find_org("acme")
    team = emu.state.find_team("acme", "backend")
    assert org and team
    for org_ref, project in (("acme", "checkout"), (org.id, seeded.checkout.id), ("acme", seeded.checkout.id)):
        status, body, _ = await get(http, f"{emu.url}/api/0/projects/{org_ref}/{project}/", seeded.auth())
        assert (status, body["slug"], body["organization"]["slug"]) == (200, "checkout", "acme")
    assert (await get(http, f"{emu.url}/api/0/projects/acme/{seeded.payments.id}9/", seeded.auth()))[0] == 404
    status, body = await create(http, seeded, {"name": "By Id", "slug": "by-id"}, team=team.id)
    assert status == 201


async def test_create_project(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    status, body = await create(
        http, seeded, {"name": "Orders", "slug": "orders", "platform": "other", "default_rules": False}
    )
    assert status == 201
    assert (body["slug"], body["name"], body["platform"], body["teams"][0]["slug"]) == (
        "orders",
        "Orders",
        "other",
        "backend",
    )
    keys = emu.state.project_keys(body["id"])
    assert [k.name for k in keys] == ["Default"]
    created = emu.state.project("acme", "orders")
    assert created and created.default_rules is False
    # Explicit duplicate → 409.
    assert await create(http, seeded, {"name": "Orders", "slug": "orders"}) == (
        409,
        {"detail": "A project with this slug already exists."},
    )
    # Slug omitted → slugified name, with a suffix on collision.
    status, body = await create(http, seeded, {"name": "Orders"})
    assert status == 201 and re.fullmatch(r"orders-[a-z0-9]{2,}", body["slug"])
    status, body = await create(http, seeded, {"name": "My Shop!"})
    assert (status, body["slug"]) == (201, "my-shop")
    # Unknown team / org.
    assert await create(http, seeded, {"name": "x"}, team="nope") == (404, {"detail": "Team not found."})
    # A project pending deletion still holds its slug.
    emu.state.delete_project("acme", "orders")
    assert (await create(http, seeded, {"name": "Orders", "slug": "orders"}))[0] == 409


async def test_create_project_validation(seeded: Seeded, http: aiohttp.ClientSession):
    status, body = await create(http, seeded, {"slug": "x"})
    assert (status, body) == (400, {"name": ["This field is required."]})
    status, body = await create(http, seeded, {"name": "n" * 51})
    assert status == 400 and "name" in body
    for bad in ("Upper", "12345", "has space", "dot.ted", ""):
        status, body = await create(http, seeded, {"name": "ok", "slug": bad})
        assert status == 400 and body["slug"][0].startswith("Enter a valid slug"), bad
    status, body = await create(http, seeded, {"name": "ok", "platform": "cobol"})
    assert (status, body) == (400, {"platform": ["Invalid platform"]})
    assert (await create(http, seeded, {"name": "ok", "slug": "blank-platform", "platform": ""}))[0] == 201
    assert (await create(http, seeded, {"name": "ok", "slug": "s" * 100}))[0] == 201
    status, body = await create(http, seeded, {"name": "ok", "slug": "s" * 101})
    assert status == 400 and body["slug"] == ["Ensure this field has no more than 100 characters."]


async def test_legacy_slug_limit_50(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(max_slug_length=50)
    assert (await create(http, seeded, {"name": "ok", "slug": "s" * 50}))[0] == 201
    status, body = await create(http, seeded, {"name": "ok", "slug": "t" * 51})
    assert status == 400 and body["slug"] == ["Ensure this field has no more than 50 characters."]


async def test_member_project_creation_disabled(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(disable_member_project_creation=True)
    assert (await create(http, seeded, {"name": "x", "slug": "x"}))[0] == 403
    org_writer = seeded.emu.state.add_token(scopes=["org:write"])
    assert (await create(http, seeded, {"name": "x", "slug": "x"}, token=org_writer))[0] == 201


async def test_delete_project(seeded: Seeded, http: aiohttp.ClientSession):
    emu, url = seeded.emu, f"{seeded.emu.url}/api/0/projects/acme/checkout/"
    async with http.delete(url, headers=seeded.auth()) as resp:
        assert resp.status == 403
    admin = emu.state.add_token(scopes=["project:admin"])
    async with http.delete(url, headers=seeded.auth(admin)) as resp:
        assert resp.status == 204
    assert (await get(http, url, seeded.auth()))[0] == 404
    assert emu.state.project("acme", "checkout") is None


async def test_keys_list_create_and_dsn(seeded: Seeded, http: aiohttp.ClientSession):
    emu, pid = seeded.emu, seeded.checkout.id
    url = f"{emu.url}/api/0/projects/acme/checkout/keys/"
    async with http.post(url, json={"name": "sentryroute"}, headers=seeded.auth()) as resp:
        assert resp.status == 201
        created = await resp.json()
    emu.state.set_key_active(seeded.key, False)
    status, keys, _ = await get(http, url, seeded.auth())
    assert [k["name"] for k in keys] == ["sentryroute", "Default"]  # newest first
    key = keys[0]
    assert key == created
    assert (key["id"], key["label"], key["projectId"], key["isActive"], key["rateLimit"]) == (
        key["public"],
        "sentryroute",
        int(pid),
        True,
        None,
    )
    assert re.fullmatch(r"[0-9a-f]{32}", key["public"]) and key["secret"]
    dsn = key["dsn"]
    origin = emu.url
    assert dsn["public"] == f"http://{key['public']}@{origin.removeprefix('http://')}/{pid}"
    assert dsn["secret"] == f"http://{key['public']}:{key['secret']}@{origin.removeprefix('http://')}/{pid}"
    assert dsn["otlp_traces"] == f"{origin}/api/{pid}/integration/otlp/v1/traces"
    assert dsn["otlp_logs"] == f"{origin}/api/{pid}/integration/otlp/v1/logs"
    assert {"csp", "security", "minidump", "nel", "unreal", "cdn"} <= set(dsn)
    assert [k["name"] for k in (await get(http, url + "?status=active", seeded.auth()))[1]] == ["sentryroute"]
    assert [k["name"] for k in (await get(http, url + "?status=inactive", seeded.auth()))[1]] == ["Default"]
    assert (await get(http, url + "?status=bogus", seeded.auth()))[1] == []
    async with http.post(url, json={}, headers=seeded.auth()) as resp:
        assert resp.status == 201 and (await resp.json())["name"]  # a generated petname
    org_keys = f"{emu.url}/api/0/organizations/acme/project-keys/"
    status, body, headers = await get(http, org_keys, seeded.auth())
    assert status == 200 and len(body) == 4 and "Link" in headers


async def test_keys_without_otlp_dsn(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(omit_otlp_dsn=True)
    _, keys, _ = await get(http, f"{seeded.emu.url}/api/0/projects/acme/checkout/keys/", seeded.auth())
    assert "otlp_traces" not in keys[0]["dsn"] and "otlp_logs" not in keys[0]["dsn"]
    assert keys[0]["dsn"]["public"].endswith(f"/{seeded.checkout.id}")


async def test_organizations_list_and_detail(seeded: Seeded, http: aiohttp.ClientSession):
    status, body, headers = await get(http, f"{seeded.emu.url}/api/0/organizations/", seeded.auth())
    assert status == 200 and [o["slug"] for o in body] == ["acme"] and "Link" in headers
    status, body, _ = await get(http, f"{seeded.emu.url}/api/0/organizations/{body[0]['id']}/", seeded.auth())
    assert (status, body["slug"]) == (200, "acme")


async def test_teams_list(seeded: Seeded, http: aiohttp.ClientSession):
    status, body, headers = await get(http, f"{seeded.emu.url}/api/0/organizations/acme/teams/", seeded.auth())
    assert status == 200 and [t["slug"] for t in body] == ["backend"]
    assert {p["slug"] for p in body[0]["projects"]} == {"checkout", "payments"}
    assert "Link" in headers


async def test_rate_limit_headers_and_fixed_window_429(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    # A long window so the test never straddles a window boundary.
    seeded = await start_emulator(api_rate_limit=3, api_rate_window=3600)
    url = f"{seeded.emu.url}/api/0/organizations/acme/projects/"
    remaining = []
    for _ in range(3):
        status, _, headers = await get(http, url, seeded.auth())
        assert status == 200 and headers["X-Sentry-Rate-Limit-Limit"] == "3"
        remaining.append(headers["X-Sentry-Rate-Limit-Remaining"])
    assert remaining == ["2", "1", "0"]
    status, body, headers = await get(http, url, seeded.auth())
    assert status == 429 and "Retry-After" not in headers
    assert body == {
        "detail": "You are attempting to use this endpoint too frequently. Limit is 3 requests in 3600 seconds"
    }
    assert time.time() < int(headers["X-Sentry-Rate-Limit-Reset"]) <= time.time() + 3601
    # Per endpoint: another endpoint still answers; error responses carry the headers too.
    status, _, headers = await get(http, f"{seeded.emu.url}/api/0/organizations/acme/teams/", seeded.auth())
    assert status == 200 and headers["X-Sentry-Rate-Limit-Remaining"] == "2"
    status, _, headers = await get(http, f"{seeded.emu.url}/api/0/projects/acme/nope/", seeded.auth())
    assert status == 404 and "X-Sentry-Rate-Limit-Reset" in headers


async def test_project_keys_endpoint_has_its_own_limit(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(keys_rate_limit=40)
    _, _, headers = await get(http, f"{seeded.emu.url}/api/0/projects/acme/checkout/keys/", seeded.auth())
    assert headers["X-Sentry-Rate-Limit-Limit"] == "40"


async def test_self_hosted_mode_has_no_rate_limit_headers(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(api_rate_limits=False, api_rate_limit=1)
    for _ in range(3):
        status, _, headers = await get(http, f"{seeded.emu.url}/api/0/organizations/acme/projects/", seeded.auth())
        assert status == 200 and "X-Sentry-Rate-Limit-Limit" not in headers


async def test_key_details_disable_rename_delete(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    url = f"{emu.url}/api/0/projects/acme/checkout/keys/{seeded.key}/"
    status, body, _ = await get(http, url, seeded.auth())
    assert (status, body["id"], body["name"]) == (200, seeded.key, "Default")
    async with http.put(url, json={"isActive": False, "name": "old"}, headers=seeded.auth()) as resp:
        assert resp.status == 200
        assert ((await resp.json())["isActive"], emu.state.keys[seeded.key].name) == (False, "old")
    async with http.put(url, json={"isActive": "no"}, headers=seeded.auth()) as resp:
        assert resp.status == 400
    wrong_project = f"{emu.url}/api/0/projects/acme/payments/keys/{seeded.key}/"
    assert (await get(http, wrong_project, seeded.auth()))[0] == 404
    async with http.delete(url, headers=seeded.auth()) as resp:
        assert resp.status == 403  # needs project:admin
    async with http.delete(url, headers=seeded.auth(emu.state.add_token(scopes=["project:admin"]))) as resp:
        assert resp.status == 204
    assert seeded.key not in emu.state.keys
    assert (await get(http, url, seeded.auth()))[0] == 404

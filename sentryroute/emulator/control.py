"""HTTP control API under `/_emulator/api/`: seed, inspect and inject faults from the CLI, the demo or curl.

It is a local development tool and has no authentication; the emulator must not be exposed publicly.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sentryroute.emulator.context import CONTEXT_KEY, Context
from sentryroute.emulator.state import Project, SlugTaken
from sentryroute.emulator.webapi import serializers

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ctx(request: web.Request) -> Context:
    return request.app[CONTEXT_KEY]


def _error(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    body = json.loads(text) if text.strip() else {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str) -> str:
    """A required string field; its absence is a 400 (a KeyError would read as an unknown object)."""
    if body.get(name) is None:
        raise ValueError(f"missing field {name!r}")
    return str(body[name])


def _guarded(handler: Handler) -> Handler:
    """Bad input → 400, unknown object → 404, slug taken → 409, each with a `detail`."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SlugTaken as exc:
            return _error(409, f"slug {exc} is taken")
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))

    return wrapper


def project_report(ctx: Context, project_id: str, *, full: bool) -> dict[str, Any]:
    """What one project received: counts, service names, request outcomes (and the items with `full`)."""
    project: Project | None = ctx.state.projects_by_id.get(project_id)
    received = ctx.received
    statuses: dict[str, int] = {}
    for request in received.requests(project_id):
        statuses[str(request.status)] = statuses.get(str(request.status), 0) + 1
    report: dict[str, Any] = {
        "id": project_id,
        "slug": project.slug if project else None,
        "org": project.org if project else None,
        "status": project.status if project else None,
        "spans": received.span_count(project_id),
        "logs": received.log_count(project_id),
        "service_names": received.service_names(project_id),
        "requests": {"total": sum(statuses.values()), "by_status": statuses},
        "invalid": received.invalid(project_id),
        "dropped": received.dropped(project_id),
    }
    if full:
        report["items"] = {
            "spans": [dataclasses.asdict(s) for s in received.spans(project_id)],
            "logs": [dataclasses.asdict(entry) for entry in received.logs(project_id)],
        }
    return report


def all_project_ids(ctx: Context) -> list[str]:
    """Every known project plus any project id that only ingest has seen, in id order."""
    with ctx.state.lock:
        ids = set(ctx.state.projects_by_id) | set(ctx.received.project_ids())
    return sorted(ids, key=lambda pid: (len(pid), pid))


async def received(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    full = request.query.get("full") in ("1", "true")
    return web.json_response({"projects": [project_report(ctx, pid, full=full) for pid in all_project_ids(ctx)]})


async def add_org(request: web.Request) -> web.Response:
    body = await _body(request)
    org = _ctx(request).state.add_org(_field(body, "slug"), name=body.get("name"))
    return web.json_response({"id": org.id, "slug": org.slug}, status=201)


async def add_team(request: web.Request) -> web.Response:
    body = await _body(request)
    team = _ctx(request).state.add_team(_field(body, "org"), _field(body, "slug"), name=body.get("name"))
    return web.json_response({"id": team.id, "slug": team.slug, "org": team.org}, status=201)


def _key_json(ctx: Context, public: str) -> dict[str, Any]:
    key = ctx.state.keys[public]
    dsn = serializers.public_dsn(key, base_url=ctx.base_url())
    return {"public": key.public, "name": key.name, "project_id": key.project_id, "dsn": dsn}


async def add_project(request: web.Request) -> web.Response:
    body = await _body(request)
    ctx = _ctx(request)
    project = ctx.state.add_project(
        _field(body, "org"), _field(body, "team"), _field(body, "slug"), body.get("name"), body.get("platform", "other")
    )
    keys = [_key_json(ctx, k.public) for k in ctx.state.project_keys(project.id)]
    return web.json_response({"id": project.id, "slug": project.slug, "org": project.org, "keys": keys}, status=201)


async def add_key(request: web.Request) -> web.Response:
    body = await _body(request)
    ctx = _ctx(request)
    key = ctx.state.add_key(_field(body, "org"), _field(body, "project"), name=str(body.get("name", "sentryroute")))
    return web.json_response(_key_json(ctx, key.public), status=201)


async def add_token(request: web.Request) -> web.Response:
    body = await _body(request)
    scopes = body.get("scopes", ["org:read", "project:read", "project:write"])
    if not isinstance(scopes, list):
        raise ValueError("scopes must be a list")
    token = _ctx(request).state.add_token(scopes=[str(s) for s in scopes], value=body.get("value"))
    return web.json_response({"token": token, "scopes": sorted(scopes)}, status=201)


async def delete_project(request: web.Request) -> web.Response:
    _ctx(request).state.delete_project(request.match_info["org"], request.match_info["slug"])
    return web.Response(status=204)


async def finish_deletions(request: web.Request) -> web.Response:
    body = await _body(request)
    org = body.get("org")
    slugs = _ctx(request).state.finish_deletions(str(org) if org is not None else None)
    return web.json_response({"deleted": slugs})


async def add_fault(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    faults = _ctx(request).faults
    if kind == "clear":
        faults.clear()
        return web.Response(status=204)
    if kind not in faults.KINDS:
        return _error(404, f"unknown fault kind; use one of: clear, {', '.join(faults.KINDS)}")
    getattr(faults, kind)(**await _body(request))
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    ctx.faults.clear()
    ctx.received.clear()
    ctx.state.reset()
    return web.Response(status=204)


# One table drives both the routes and the index `GET /_emulator/api/` answers, so they cannot drift apart.
ENDPOINTS: tuple[tuple[str, str, Handler, str], ...] = (
    ("GET", "received", received, "what each project received: counts, service names, statuses (?full=1: items)"),
    ("POST", "orgs", add_org, 'create an organization: {"slug", "name"?}'),
    ("POST", "teams", add_team, 'create a team: {"org", "slug", "name"?}'),
    ("POST", "projects", add_project, 'create a project and its Default key: {"org", "team", "slug", "platform"?}'),
    ("DELETE", "projects/{org}/{slug}", delete_project, "delete a project (ingest then answers 403 ProjectId)"),
    (
        "POST",
        "deletions/finish",
        finish_deletions,
        'finish pending deletions (slugs free again): {"org"?}',
    ),
    ("POST", "keys", add_key, 'create a client key: {"org", "project", "name"?}'),
    ("POST", "tokens", add_token, 'create a Web API token: {"scopes"?, "value"?}'),
    ("POST", "faults/{kind}", add_fault, "inject a fault, JSON body = its arguments (kinds below); faults/clear: none"),
    ("POST", "reset", reset, "forget everything: state, faults and what was received"),
)


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


async def index(request: web.Request) -> web.Response:
    """The control API's own map, so the URL the banner prints answers something useful."""
    ctx = _ctx(request)
    base = f"{ctx.config.path_prefix}/_emulator/api"
    return web.json_response(
        {
            "endpoints": [
                {"method": method, "path": f"{base}/{path}", "description": what}
                for method, path, _handler, what in ENDPOINTS
            ],
            "faults": {kind: _first_line(getattr(ctx.faults, kind).__doc__) for kind in ctx.faults.KINDS},
            "page": f"{ctx.config.path_prefix}/_emulator/",
        }
    )


def routes(prefix: str) -> list[web.RouteDef]:
    api = f"{prefix}/_emulator/api"
    return [
        web.get(f"{api}/", index),
        web.get(api, index),
        *(web.route(method, f"{api}/{path}", _guarded(handler)) for method, path, handler, _what in ENDPOINTS),
    ]

"""Steps every Web API handler shares, in Sentry's order: authenticate (401), resolve by id or slug (404),
check scopes (403); plus body parsing, pagination and the key serializer with this server's URLs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from sentryroute.emulator.context import CONTEXT_KEY, Context
from sentryroute.emulator.state import Key, Org, Project
from sentryroute.emulator.webapi import serializers
from sentryroute.emulator.webapi.errors import INVALID_TOKEN, NO_PERMISSION, NOT_AUTHENTICATED, NOT_FOUND, ApiError
from sentryroute.emulator.webapi.pagination import paginate

ORG_READ = ("org:read", "org:write", "org:admin")
ORG_WRITE = ("org:write", "org:admin")
PROJECT_READ = ("project:read", "project:write", "project:admin")
PROJECT_WRITE = ("project:write", "project:admin")
PROJECT_CREATE = ("project:write", "project:admin", "org:write", "org:admin")
PROJECT_ADMIN = ("project:admin",)


def context(request: web.Request) -> Context:
    return request.app[CONTEXT_KEY]


def scopes(request: web.Request) -> frozenset[str]:
    """Scopes of the Bearer token (401 without one). DSN keys are not tokens, so they are "Invalid token"."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, NOT_AUTHENTICATED)
    state = context(request).state
    with state.lock:
        granted = state.tokens.get(token.strip())
    if granted is None:
        raise ApiError(401, INVALID_TOKEN)
    return granted


def require(granted: frozenset[str], allowed: Iterable[str]) -> None:
    if not granted.intersection(allowed):
        raise ApiError(403, NO_PERMISSION)


def get_org(request: web.Request) -> Org:
    org = context(request).state.find_org(request.match_info["org"])
    if org is None:
        raise ApiError(404, NOT_FOUND)
    return org


def get_project(request: web.Request) -> Project:
    org = get_org(request)
    project = context(request).state.find_project(org.slug, request.match_info["project"])
    if project is None:
        raise ApiError(404, NOT_FOUND)
    return project


async def json_body(request: web.Request) -> Any:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(400, f"JSON parse error - {exc}") from exc


def paginated(request: web.Request, items: list[Any], serialize: Callable[[Any], Any]) -> web.Response:
    ctx = context(request)
    page, link = paginate(request, items, origin=ctx.origin(request), page_size=ctx.config.page_size)
    with ctx.state.lock:
        body = [serialize(item) for item in page]
    return web.json_response(body, headers={"Link": link})


def keys_with_status(keys: list[Key], status: str | None) -> list[Key]:
    """`status=active|inactive` filters; any other value matches nothing, as in Sentry."""
    if status is None:
        return keys
    if status not in ("active", "inactive"):
        return []
    return [k for k in keys if k.is_active == (status == "active")]


def key_json(request: web.Request, key: Key) -> dict[str, Any]:
    ctx = context(request)
    return serializers.project_key(key, base_url=ctx.base_url(request), with_otlp=not ctx.config.omit_otlp_dsn)

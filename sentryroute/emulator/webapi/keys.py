"""Client key endpoints of a project: list, create, detail, update (disable, rename), delete."""

from __future__ import annotations

import secrets

from aiohttp import web

from sentryroute.emulator.state import Key
from sentryroute.emulator.webapi.common import (
    PROJECT_ADMIN,
    PROJECT_READ,
    PROJECT_WRITE,
    context,
    get_project,
    json_body,
    key_json,
    keys_with_status,
    paginated,
    require,
    scopes,
)
from sentryroute.emulator.webapi.errors import NOT_FOUND, ApiError

# Sentry names keys created without a name with a petname ("Adjective Noun").
_ADJECTIVES = ("Brave", "Calm", "Eager", "Gentle", "Jolly", "Lucky", "Proud", "Swift")
_NOUNS = ("Badger", "Falcon", "Koala", "Lynx", "Otter", "Panda", "Raven", "Tiger")


async def project_keys(request: web.Request) -> web.Response:
    granted = scopes(request)
    project = get_project(request)
    require(granted, PROJECT_READ)
    keys = keys_with_status(context(request).state.project_keys(project.id), request.query.get("status"))
    return paginated(request, keys, lambda k: key_json(request, k))


async def project_keys_create(request: web.Request) -> web.Response:
    granted = scopes(request)
    project = get_project(request)
    require(granted, PROJECT_WRITE)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, body={"non_field_errors": ["Invalid data. Expected a dictionary."]})
    name = body.get("name") or f"{secrets.choice(_ADJECTIVES)} {secrets.choice(_NOUNS)}"
    if not isinstance(name, str) or len(name) > 64:
        raise ApiError(400, body={"name": ["Ensure this field has no more than 64 characters."]})
    # `rateLimit` is honoured only with the org feature `projects:rate-limits`, which the emulator lacks.
    key = context(request).state.add_key(project.org, project.id, name=name)
    return web.json_response(key_json(request, key), status=201)


def _key(request: web.Request) -> Key:
    project = get_project(request)
    key = context(request).state.keys.get(request.match_info["key_id"])
    if key is None or key.project_id != project.id:
        raise ApiError(404, NOT_FOUND)
    return key


async def project_key_detail(request: web.Request) -> web.Response:
    granted = scopes(request)
    key = _key(request)
    require(granted, PROJECT_READ)
    return web.json_response(key_json(request, key))


async def project_key_update(request: web.Request) -> web.Response:
    """PUT: `name` and `isActive` (how keys are disabled and rotated); `rateLimit` needs an org feature."""
    granted = scopes(request)
    key = _key(request)
    require(granted, PROJECT_WRITE)
    body = await json_body(request)
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        raise ApiError(400, body={"non_field_errors": ["Invalid data. Expected a dictionary."]})
    if "name" in body and (not isinstance(body["name"], str) or len(body["name"]) > 64):
        errors["name"] = ["Ensure this field has no more than 64 characters."]
    if "isActive" in body and not isinstance(body["isActive"], bool):
        errors["isActive"] = ["Must be a valid boolean."]
    if errors:
        raise ApiError(400, body=errors)
    with context(request).state.lock:
        key.name = body.get("name", key.name)
        key.is_active = body.get("isActive", key.is_active)
    return web.json_response(key_json(request, key))


async def project_key_delete(request: web.Request) -> web.Response:
    granted = scopes(request)
    key = _key(request)
    require(granted, PROJECT_ADMIN)
    context(request).state.delete_key(key.public)
    return web.Response(status=204)

"""Project endpoints: detail, delete (pending deletion, slug kept) and create under a team."""

from __future__ import annotations

from aiohttp import web

from sentryroute.emulator.state import SlugTaken
from sentryroute.emulator.webapi import project_create, serializers
from sentryroute.emulator.webapi.common import (
    ORG_WRITE,
    PROJECT_ADMIN,
    PROJECT_CREATE,
    PROJECT_READ,
    context,
    get_project,
    json_body,
    require,
    scopes,
)
from sentryroute.emulator.webapi.errors import ApiError

MEMBER_CREATION_DISABLED = "Your organization has disabled this feature for members."


async def project_detail(request: web.Request) -> web.Response:
    granted = scopes(request)
    project = get_project(request)
    require(granted, PROJECT_READ)
    state = context(request).state
    with state.lock:
        return web.json_response(serializers.project_detail(state, project))


async def project_delete(request: web.Request) -> web.Response:
    granted = scopes(request)
    project = get_project(request)
    require(granted, PROJECT_ADMIN)
    context(request).state.delete_project(project.org, project.id)
    return web.Response(status=204)


async def team_projects_create(request: web.Request) -> web.Response:
    granted = scopes(request)
    ctx = context(request)
    team = ctx.state.find_team(request.match_info["org"], request.match_info["team"])
    if team is None:
        raise ApiError(404, "Team not found.")
    if ctx.config.disable_member_project_creation:
        if not granted.intersection(ORG_WRITE):
            raise ApiError(403, MEMBER_CREATION_DISABLED)
    else:
        require(granted, PROJECT_CREATE)
    name, slug, platform, default_rules = project_create.validate(
        await json_body(request), max_slug_length=ctx.config.max_slug_length
    )
    with ctx.state.lock:
        try:
            chosen = slug or ctx.state.unique_slug(team.org, name, max_length=ctx.config.max_slug_length)
            project = ctx.state.add_project(team.org, team.slug, chosen, name, platform, default_rules=default_rules)
        except SlugTaken as exc:
            raise ApiError(409, "A project with this slug already exists.") from exc
        return web.json_response(serializers.project_summary(ctx.state, project), status=201)

"""Organization endpoints: detail, projects (search + pagination), teams, project keys across projects."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sentryroute.emulator.state import Project
from sentryroute.emulator.webapi import serializers
from sentryroute.emulator.webapi.common import (
    ORG_READ,
    context,
    get_org,
    key_json,
    keys_with_status,
    paginated,
    require,
    scopes,
)
from sentryroute.emulator.webapi.errors import ApiError

STATS_PERIODS = ("", "1h", "24h", "7d", "14d", "30d", "90d")


def _free_text(project: Project, words: list[str]) -> bool:
    text = " ".join(words).lower()
    return text in project.name.lower() or text in project.slug.lower()


# `query=` search keys of the org projects list; any other key matches nothing, as in Sentry.
_SEARCH_FILTERS: dict[str, Callable[[Project, list[str]], bool]] = {
    "query": _free_text,
    "slug": lambda project, values: project.slug in values,
    "id": lambda project, values: project.id in values,
    "team": lambda project, values: bool(set(values) & set(project.teams)),
    "!team": lambda project, values: not set(values) & set(project.teams),
    "is_member": lambda project, values: True,
}


def _matches(project: Project, tokens: dict[str, list[str]]) -> bool:
    return all(key in _SEARCH_FILTERS and _SEARCH_FILTERS[key](project, values) for key, values in tokens.items())


def _query_tokens(query: str) -> dict[str, list[str]]:
    tokens: dict[str, list[str]] = {}
    for word in query.split():
        key, sep, value = word.partition(":")
        if sep:
            tokens.setdefault(key, []).append(value)
        else:
            tokens.setdefault("query", []).append(word)
    return tokens


async def org_list(request: web.Request) -> web.Response:
    """The organizations the token can see: every one, since emulator tokens are not tied to an org."""
    require(scopes(request), ORG_READ)
    state = context(request).state
    with state.lock:
        orgs = sorted(state.orgs.values(), key=lambda o: o.slug)
    return paginated(request, orgs, serializers.org_summary)


async def org_detail(request: web.Request) -> web.Response:
    granted = scopes(request)
    org = get_org(request)
    require(granted, ORG_READ)
    return web.json_response(serializers.org_summary(org))


async def org_projects(request: web.Request) -> web.Response:
    granted = scopes(request)
    org = get_org(request)
    require(granted, ORG_READ)
    if request.query.get("statsPeriod", "") not in STATS_PERIODS:
        message = "Invalid stats_period. Valid choices are '', '1h', '24h', '7d', '14d', '30d', and '90d'"
        raise ApiError(400, body={"error": {"params": {"stats_period": {"message": message}}}})
    state = context(request).state
    tokens = _query_tokens(request.query.get("query", ""))
    projects = [p for p in state.projects(org.slug) if _matches(p, tokens)]
    if request.query.get("all_projects") == "1":
        with state.lock:
            return web.json_response([serializers.project_summary(state, p) for p in projects])
    return paginated(request, projects, lambda p: serializers.project_summary(state, p))


async def org_teams(request: web.Request) -> web.Response:
    granted = scopes(request)
    org = get_org(request)
    require(granted, ORG_READ)
    state = context(request).state
    detailed = request.query.get("detailed", "1") != "0"
    return paginated(request, state.org_teams(org.slug), lambda t: serializers.team(state, t, detailed=detailed))


async def org_project_keys(request: web.Request) -> web.Response:
    granted = scopes(request)
    org = get_org(request)
    require(granted, ORG_READ)
    state = context(request).state
    team = request.query.get("team")
    projects = [p for p in state.projects(org.slug) if team is None or team in p.teams]
    keys = sorted((k for p in projects for k in state.project_keys(p.id)), key=lambda k: -k.seq)
    keys = keys_with_status(keys, request.query.get("status"))
    return paginated(request, keys, lambda k: key_json(request, k))

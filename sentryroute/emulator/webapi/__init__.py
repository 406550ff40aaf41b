"""The Web API subset under `/api/0/` (reference Part A §1): orgs, teams, projects, client keys.

A middleware gives every API response Sentry's rate-limit headers, applies injected API faults and turns
`ApiError` into DRF-style JSON; the handlers live in one module per resource.
"""

from __future__ import annotations

from aiohttp import web

from sentryroute.emulator.webapi import keys, orgs, projects
from sentryroute.emulator.webapi.middleware import middlewares

__all__ = ["middlewares", "routes"]


def routes(prefix: str) -> list[web.RouteDef]:
    api = f"{prefix}/api/0"
    return [
        web.get(f"{api}/organizations/", orgs.org_list),
        web.get(f"{api}/organizations/{{org}}/", orgs.org_detail),
        web.get(f"{api}/organizations/{{org}}/projects/", orgs.org_projects),
        web.get(f"{api}/organizations/{{org}}/teams/", orgs.org_teams),
        web.get(f"{api}/organizations/{{org}}/project-keys/", orgs.org_project_keys),
        web.get(f"{api}/projects/{{org}}/{{project}}/", projects.project_detail),
        web.delete(f"{api}/projects/{{org}}/{{project}}/", projects.project_delete),
        web.get(f"{api}/projects/{{org}}/{{project}}/keys/", keys.project_keys),
        web.post(f"{api}/projects/{{org}}/{{project}}/keys/", keys.project_keys_create),
        web.get(f"{api}/projects/{{org}}/{{project}}/keys/{{key_id}}/", keys.project_key_detail),
        web.put(f"{api}/projects/{{org}}/{{project}}/keys/{{key_id}}/", keys.project_key_update),
        web.delete(f"{api}/projects/{{org}}/{{project}}/keys/{{key_id}}/", keys.project_key_delete),
        web.post(f"{api}/teams/{{org}}/{{team}}/projects/", projects.team_projects_create),
    ]

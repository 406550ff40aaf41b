"""JSON shapes of the Web API, following Sentry's serializers (ProjectSummary, Team, ProjectKey)."""

from __future__ import annotations

from typing import Any

from sentryroute.emulator.state import Key, Org, Project, State, Team

PROJECT_FEATURES = ["span-streaming", "ourlogs-ingestion", "performance-view"]


def team_ref(team: Team) -> dict[str, Any]:
    return {"id": team.id, "slug": team.slug, "name": team.name}


def project_summary(state: State, project: Project) -> dict[str, Any]:
    teams = [team_ref(t) for slug in project.teams if (t := state.teams.get((project.org, slug)))]
    return {
        "id": project.id,
        "slug": project.slug,
        "name": project.name,
        "platform": project.platform,
        "dateCreated": project.date_created,
        "isBookmarked": False,
        "isMember": True,
        "hasAccess": True,
        "firstEvent": None,
        "firstTransactionEvent": False,
        "features": PROJECT_FEATURES,
        "status": project.status,
        "team": teams[0] if teams else None,
        "teams": teams,
        "hasSessions": False,
        "hasProfiles": False,
        "hasReplays": False,
        "hasMonitors": False,
        "hasMinifiedStackTrace": False,
        "hasInsightsHttp": False,
        "hasLogs": False,
        "environments": [],
    }


def org_summary(org: Org) -> dict[str, Any]:
    return {
        "id": org.id,
        "slug": org.slug,
        "name": org.name,
        "dateCreated": org.date_created,
        "status": {"id": "active"},
    }


def project_detail(state: State, project: Project) -> dict[str, Any]:
    detail = project_summary(state, project)
    detail["organization"] = org_summary(state.orgs[project.org])
    detail["options"] = {}
    detail["defaultRules"] = project.default_rules
    return detail


def team(state: State, team_obj: Team, *, detailed: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        **team_ref(team_obj),
        "dateCreated": team_obj.date_created,
        "isMember": True,
        "memberCount": 1,
        "hasAccess": True,
        "isPending": False,
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": None},
    }
    if detailed:
        body["projects"] = [project_summary(state, p) for p in state.projects(team_obj.org) if team_obj.slug in p.teams]
    return body


def public_dsn(key: Key, *, base_url: str) -> str:
    """`http://<public>@host:port[/prefix]/<project id>`."""
    scheme, _, rest = base_url.partition("://")
    return f"{scheme}://{key.public}@{rest}/{key.project_id}"


def dsn(key: Key, *, base_url: str, with_otlp: bool) -> dict[str, str]:
    """The `dsn` object; `base_url` is `http://host:port[/prefix]`, as on a self-hosted install."""
    scheme, _, rest = base_url.partition("://")
    api = f"{base_url}/api/{key.project_id}"
    urls = {
        "secret": f"{scheme}://{key.public}:{key.secret}@{rest}/{key.project_id}",
        "public": public_dsn(key, base_url=base_url),
        "csp": f"{api}/csp-report/?sentry_key={key.public}",
        "security": f"{api}/security/?sentry_key={key.public}",
        "minidump": f"{api}/minidump/?sentry_key={key.public}",
        "nel": f"{api}/nel/?sentry_key={key.public}",
        "unreal": f"{api}/unreal/{key.public}/",
        "crons": f"{api}/cron/___MONITOR_SLUG___/{key.public}/",
        "cdn": f"{base_url}/js-sdk-loader/{key.public}.min.js",
    }
    if with_otlp:
        urls["otlp_traces"] = f"{api}/integration/otlp/v1/traces"
        urls["otlp_logs"] = f"{api}/integration/otlp/v1/logs"
    return urls


def project_key(key: Key, *, base_url: str, with_otlp: bool) -> dict[str, Any]:
    return {
        "id": key.public,
        "name": key.name,
        "label": key.name,
        "public": key.public,
        "secret": key.secret,
        "projectId": int(key.project_id),
        "isActive": key.is_active,
        "rateLimit": key.rate_limit,
        "dsn": dsn(key, base_url=base_url, with_otlp=with_otlp),
        "browserSdkVersion": "8.x",
        "browserSdk": {"choices": [["latest", "latest"], ["8.x", "8.x"], ["7.x", "7.x"]]},
        "dateCreated": key.date_created,
        "dynamicSdkLoaderOptions": {"hasReplay": True, "hasPerformance": False, "hasDebug": False},
        "useCase": "user",
    }

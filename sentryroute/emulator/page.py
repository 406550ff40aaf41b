"""A small self-refreshing HTML page: orgs, projects, public keys and what each project received.

Everything shown is escaped: service names and slugs arrive from untrusted telemetry and API clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from aiohttp import web

from sentryroute.emulator.context import CONTEXT_KEY, Context
from sentryroute.emulator.control import all_project_ids, project_report

REFRESH_SECONDS = 2


def _row(cells: Sequence[object], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{escape(str(cell))}</{tag}>" for cell in cells) + "</tr>"


def _table(headers: list[str], rows: Sequence[Sequence[object]]) -> str:
    body = "".join(_row(r) for r in rows) or f'<tr><td colspan="{len(headers)}">none</td></tr>'
    return f"<table>{_row(headers, 'th')}{body}</table>"


def render(ctx: Context) -> str:
    state = ctx.state
    with state.lock:
        orgs = [[o.id, o.slug, ", ".join(t.slug for t in state.org_teams(o.slug))] for o in state.orgs.values()]
        keys = [
            [k.project_id, k.name, k.public, "active" if k.is_active else "inactive"]
            for k in sorted(state.keys.values(), key=lambda k: k.seq)
        ]
    projects = []
    for pid in all_project_ids(ctx):
        report = project_report(ctx, pid, full=False)
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(report["requests"]["by_status"].items()))
        projects.append(
            [pid, report["org"] or "?", report["slug"] or "(unknown)", report["status"] or "-", report["spans"],
             report["logs"], ", ".join(report["service_names"]), statuses, report["invalid"], report["dropped"]]
        )  # fmt: skip
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>Sentry emulator</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}th{{background:#eee}}</style></head>
<body><h1>Sentry emulator</h1><p>Base URL: <code>{escape(ctx.base_url())}</code></p>
<h2>Organizations</h2>{_table(["id", "slug", "teams"], orgs)}
<h2>Projects and what they received</h2>
{_table(["id", "org", "slug", "status", "spans", "logs", "service names", "requests", "invalid", "dropped"], projects)}
<h2>Client keys</h2>{_table(["project id", "name", "public key", "state"], keys)}
</body></html>"""


async def show(request: web.Request) -> web.Response:
    return web.Response(text=render(request.app[CONTEXT_KEY]), content_type="text/html")


def routes(prefix: str) -> list[web.RouteDef]:
    paths = {"/", f"{prefix}/", f"{prefix}/_emulator/", f"{prefix}/_emulator"}
    return [web.get(path, show) for path in sorted(paths)]

"""Fitting the routes table under the ConfigMap limit: routing never freezes (SPEC §3).

A table that would not fit is still written, with its least important entries left out. Every entry of
`routes`, `pending` and `refused` is ranked, most important first:

1. `routes`, in table order (mapped values, then auto-provisioned values, then identity routes, then the
   identity and auto-create routes of reported values, §4 — SentryRoutes before ClusterSentryRoutes in each
   stage), so the last identity route goes first and a mapped value last;
2. `pending`, in table order;
3. `refused`, in table order.

The longest prefix of that ranking that fits is kept; `fallbacks`, `unrouted`, `autoCreate` and the projects
the kept entries name are always kept. The table then says how many entries it left out (`truncated`).
Sizes are added up entry by entry (each entry's canonical JSON), so fitting a 10,000-entry table costs one
pass, not one serialisation per attempt; the result is measured once more as the API server measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentryroute.routes import Pending, Refused, Route, RoutesTable, Truncation, json_size

from .size import check_size

Entry = Route | Pending | Refused


@dataclass(frozen=True)
class Fitted:
    """The table to write, and what was left out of it (nothing when `dropped` is 0)."""

    table: RoutesTable
    dropped: int = 0
    dropped_refused: int = 0
    dropped_pending: int = 0
    dropped_routes: int = 0

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def describe(self) -> str:
        return (
            f"{self.dropped} entries left out to stay under the ConfigMap size limit "
            f"({self.dropped_routes} routes, {self.dropped_pending} pending, {self.dropped_refused} refused)"
        )


def fit_table(table: RoutesTable, *, limit: int) -> Fitted:
    """`table` itself when it fits in `limit` bytes, else its most important entries that do (see module doc)."""
    if not check_size(table.to_json(), limit=limit).too_large:
        return Fitted(table)
    ranked: list[Entry] = [*table.routes, *table.pending, *table.refused]
    keep = _longest_fitting_prefix(table, ranked, limit)
    while keep > 0:
        fitted = _keep(table, ranked, keep)
        if not check_size(fitted.to_json(), limit=limit).too_large:
            break
        keep = keep * 9 // 10  # the estimate was short (it should not be): shrink until it fits
    else:
        fitted = _keep(table, ranked, 0)
    routes, pending = len(table.routes), len(table.pending)
    return Fitted(
        fitted,
        dropped=len(ranked) - keep,
        dropped_routes=max(routes - keep, 0),
        dropped_pending=max(min(routes + pending - keep, pending), 0),
        dropped_refused=min(len(ranked) - keep, len(table.refused)),
    )


def _keep(table: RoutesTable, ranked: list[Entry], keep: int) -> RoutesTable:
    kept = ranked[:keep]
    routes = tuple(e for e in kept if isinstance(e, Route))
    referenced = {r.project for r in routes} | {f.project for f in table.fallbacks}
    return table.model_copy(
        update={
            "routes": routes,
            "pending": tuple(e for e in kept if isinstance(e, Pending)),
            "refused": tuple(e for e in kept if isinstance(e, Refused)),
            "projects": {k: v for k, v in table.projects.items() if k in referenced},
            "truncated": Truncation(droppedEntries=len(ranked) - keep),
        }
    ).with_revision()


def _longest_fitting_prefix(table: RoutesTable, ranked: list[Entry], limit: int) -> int:
    """How many ranked entries fit, adding up each entry's bytes (and each project's, when first named)."""
    base = _keep(table, ranked, 0)
    # The truncation count grows by a few digits at most; leave room for it.
    budget = limit - len(base.to_json().encode()) - len(str(len(ranked)))
    used = 0
    projects: set[str] = {f.project for f in table.fallbacks}
    for index, entry in enumerate(ranked):
        cost = json_size(entry.model_dump(mode="json", exclude_none=True)) + 1  # the separating comma
        if isinstance(entry, Route) and entry.project not in projects:
            endpoint = table.projects[entry.project].model_dump(mode="json", exclude_none=True)
            cost += json_size({entry.project: endpoint}) - 1  # `"key":{...}` and a comma, without the braces
        if used + cost > budget:
            return index
        used += cost
        if isinstance(entry, Route):
            projects.add(entry.project)
    return len(ranked)

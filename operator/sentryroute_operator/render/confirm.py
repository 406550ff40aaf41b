"""Ready tells the truth: a route is Ready only when its values are in the table the operator wrote (SPEC §3).

The renderer decides statuses from provisioning answers; the table actually in the ConfigMap may hold less
(entries left out to stay under the size limit, or no new table at all when even its fallbacks do not fit).
This pass compares each Ready value with that table and turns the route's Ready condition False when one is
missing, with reason `TableTruncated` (left out on purpose, SPEC §3) or `NotInTable`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from sentryroute.routes import RoutesTable

from ..derive.plan import RoutePlan
from ..derive.routes import RouteKey
from ..provision.provisioner import ProjectState
from .renderer import RouteStatus
from .status import Condition

_MESSAGE_LIMIT = 1024


def confirm_written(
    plans: Sequence[RoutePlan],
    statuses: Mapping[RouteKey, RouteStatus],
    written: RoutesTable | None,
    *,
    truncated: bool,
) -> dict[RouteKey, RouteStatus]:
    """`statuses`, with Ready=False for every route that has a Ready value missing from `written`."""
    present = routed_namespaces(written)
    out = dict(statuses)
    for plan in plans:
        status = statuses.get(plan.key)
        if status is None:
            continue
        spec = plan.spec
        missing = [
            entry.value
            for entry in status.entries
            if entry.state == ProjectState.READY
            and not _routed(present.get((spec.attribute, entry.value)), spec.scope, plan.covered)
        ]
        if not missing:
            continue
        if truncated:
            reason = "TableTruncated"
            why = "left out of the routes table to keep it under the ConfigMap size limit"
        else:
            reason = "NotInTable"
            why = "not in the routes table the operator wrote"
        names = ", ".join(repr(v[:100]) for v in missing[:5]) + (" …" if len(missing) > 5 else "")
        message = f"{len(missing)} ready value(s) {why}: {names}"[:_MESSAGE_LIMIT]
        condition = status.condition
        if condition.status == "True" or condition.reason in ("Provisioning", "Provisioned"):
            condition = Condition("False", reason, message)
        out[plan.key] = dataclasses.replace(status, condition=condition, truncated=message if truncated else None)
    return out


def routed_namespaces(table: RoutesTable | None) -> dict[tuple[str, str], set[str | None]]:
    """(attribute, value) → the namespaces `table` routes it for (None: cluster-wide)."""
    present: dict[tuple[str, str], set[str | None]] = {}
    for route in table.routes if table is not None else ():
        present.setdefault((route.attribute, route.value), set()).add(route.namespace)
    return present


def routed_for(namespaces: set[str | None] | None, scope: str | None) -> bool:
    """A value routed for `namespaces` reaches `scope` (None: cluster-wide): any entry does for a cluster-wide
    scope; a namespace needs its own entry or a cluster-wide one."""
    if not namespaces:
        return False
    return scope is None or scope in namespaces or None in namespaces


def _routed(namespaces: set[str | None] | None, scope: str | None, covered: tuple[str, ...] | None) -> bool:
    """A namespaced route's value must be in the table for its namespace (or cluster-wide, shadowing it); a
    namespaceSelector's for every namespace it covers (none to check when it selects no namespace)."""
    if covered is not None:
        return all(routed_for(namespaces, ns) for ns in covered)
    return routed_for(namespaces, scope)

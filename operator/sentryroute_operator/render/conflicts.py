"""Two SentryRoutes sending one value to different projects (SPEC §3): both render, one entry says Conflict."""

from __future__ import annotations

from collections.abc import Iterable

from .table import RouteContribution

#: (namespace, name) of a SentryRoute and the value in conflict.
ConflictKey = tuple[str, str, str]


def find_conflicts(contributions: Iterable[RouteContribution]) -> dict[ConflictKey, str]:
    """The Conflict message per (route namespace, route name, value).

    The entry later in table order gets it (mappings of all routes come before auto-provisioned values, each
    by route age): for telemetry without `k8s.namespace.name` the earlier entry wins, so the message is true.
    """
    ordered = sorted(contributions, key=lambda c: c.order)
    claims: dict[tuple[str, str], tuple[RouteContribution, str]] = {}
    conflicts: dict[ConflictKey, str] = {}
    for stage in ("mapped", "provisioned"):
        for contribution in ordered:
            _, _, namespace, name = contribution.order
            if not namespace:
                continue  # a ClusterSentryRoute comes after every SentryRoute on purpose (SPEC §2.1)
            for routed in getattr(contribution, stage):
                if routed.project is None:
                    continue
                first, project = claims.setdefault(
                    (contribution.attribute, routed.value), (contribution, routed.project)
                )
                if first.order != contribution.order and project != routed.project:
                    _, _, first_namespace, first_name = first.order
                    conflicts[(namespace, name, routed.value)] = (
                        f"{routed.value!r} is also routed by SentryRoute {first_namespace}/{first_name} to {project}, "
                        f"which comes first in the routes table; this route only takes effect for telemetry carrying "
                        f"k8s.namespace.name={namespace}"
                    )
    return conflicts

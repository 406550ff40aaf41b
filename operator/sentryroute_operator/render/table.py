"""The pure routes-table builder: SPEC §3's rendering order, in one function that tests can call directly.

The caller (the reconcile loop) decides *what* each SentryRoute covers; this module only decides *where*
each piece goes in the table. Keeping it free of I/O makes the order rules easy to test exhaustively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sentryroute.routes import AutoCreate, Fallback, Pending, ProjectEndpoint, Refused, Route, RoutesTable

#: (0 SentryRoute / 1 ClusterSentryRoute, creationTimestamp, namespace, name): SPEC §2.1's order.
OrderKey = tuple[int, str, str, str]


@dataclass(frozen=True)
class ValueRoute:
    """One attribute value a SentryRoute covers: routed to `project` (a projects-map key) or held as pending."""

    value: str
    project: str | None = None
    pending: bool = False


@dataclass(frozen=True)
class RouteContribution:
    """What one SentryRoute adds to the table; `namespace` "" for a ClusterSentryRoute (cluster-wide entries).

    `covered`: a ClusterSentryRoute with a namespaceSelector — each entry is rendered once per namespace it
    selects, as an `exact` namespaced entry (SPEC §2.1, §3); none when it selects no namespace.
    """

    order: OrderKey
    namespace: str
    attribute: str
    mapped: tuple[ValueRoute, ...] = ()
    provisioned: tuple[ValueRoute, ...] = ()
    identity: tuple[ValueRoute, ...] = ()
    fallback: str | None = None
    covered: tuple[str, ...] | None = None

    @property
    def scopes(self) -> tuple[str | None, ...]:
        """The `namespace` of each entry this contribution renders per item (None: cluster-wide)."""
        return self.covered if self.covered is not None else (self.namespace or None,)


@dataclass(frozen=True)
class ClusterFallback:
    attribute: str
    project: str


def build_routes_table(
    *,
    contributions: Iterable[RouteContribution],
    projects: Mapping[str, ProjectEndpoint],
    cluster_fallback: ClusterFallback | None = None,
    reported_identity: Sequence[tuple[str, str | None, ValueRoute]] = (),
    unrouted: Literal["drop", "hold"] = "drop",
    auto_create_attribute: str | None = None,
    refused: Sequence[Refused] = (),
) -> RoutesTable:
    """Render in SPEC §3 order: explicit mappings, auto-provisioned values, identity routes, fallbacks.

    Contributions are sorted by their order key here, so callers cannot get the order wrong. A route whose
    (attribute, value, namespace) was already emitted is shadowed by the earlier one and is left out.
    `reported_identity` are the routes of values reported through §4: (attribute, namespace, route); namespace
    None for an operator-wide value, else the namespace it was reported from (SPEC §4). Pending entries are
    scoped like routes: namespaced for a SentryRoute's or a namespace's reported value, cluster-wide otherwise.
    """
    ordered = sorted(contributions, key=lambda c: c.order)
    routes: list[Route] = []
    pending: list[Pending] = []
    seen_routes: set[tuple[str, str, str | None]] = set()
    seen_pending: set[tuple[str, str, str | None]] = set()

    def emit(attribute: str, namespace: str | None, item: ValueRoute, *, exact: bool = False) -> None:
        if item.project is not None:
            key = (attribute, item.value, namespace)
            if key not in seen_routes:
                seen_routes.add(key)
                routes.append(
                    Route(
                        attribute=attribute,
                        value=item.value,
                        namespace=namespace,
                        project=item.project,
                        exact=True if exact else None,
                    )
                )
        elif item.pending and (attribute, item.value, namespace) not in seen_pending:
            seen_pending.add((attribute, item.value, namespace))
            pending.append(Pending(attribute=attribute, value=item.value, namespace=namespace))

    for stage in ("mapped", "provisioned", "identity"):
        for contribution in ordered:
            exact = contribution.covered is not None
            for item in getattr(contribution, stage):
                for namespace in contribution.scopes:  # none when a namespaceSelector selects no namespace
                    emit(contribution.attribute, namespace, item, exact=exact)
    for attribute, namespace, item in reported_identity:
        emit(attribute, namespace, item)

    fallbacks = [
        Fallback(attribute=c.attribute, namespace=namespace, project=c.fallback)
        for c in ordered
        if c.fallback
        for namespace in c.scopes
    ]
    if cluster_fallback is not None:
        fallbacks.append(Fallback(attribute=cluster_fallback.attribute, project=cluster_fallback.project))

    referenced = {r.project for r in routes} | {f.project for f in fallbacks}
    return RoutesTable(
        routes=tuple(routes),
        projects={key: projects[key] for key in sorted(referenced)},
        pending=tuple(pending),
        fallbacks=tuple(fallbacks),
        unrouted=unrouted,
        autoCreate=AutoCreate(attribute=auto_create_attribute) if auto_create_attribute else None,
        refused=tuple(refused),
    ).with_revision()

"""The planner: a snapshot of routes, Pods and connections in → what each route covers (work items) out.

Pure: no I/O, no clock (the caller passes `now`), no memory of its own (the caller passes the last
`Sightings` and keeps the ones returned). The reconcile loop calls it every cycle; the provisioning
scheduler starts work for the routes whose items changed, and the renderer turns the items into table
entries. Tests call it with plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sentryroute.routes import is_valid_user_slug

from ..connections import Connection, connection_allows
from ..timestamps import rfc3339
from .podfacts import OwnerRef, PodFacts
from .route_values import pod_service_names, project_slug
from .routes import RouteKey, RouteSpec

#: (namespace, owner kind, owner name) → that owner's controller: ReplicaSet → Deployment, Job → CronJob.
Parents = Mapping[tuple[str, str, str], OwnerRef]


class ItemKind(StrEnum):
    """Where an item comes from; also its stage in SPEC §3's rendering order."""

    MAPPED = "mapped"  # spec.mapping
    AUTO = "auto"  # a value derived from this namespace's Pods (autoProvision)
    IDENTITY = "identity"  # a value some Pod reports that already is a project's slug
    FALLBACK = "fallback"  # spec.fallbackProject (covers no value)


ItemKey = tuple[ItemKind, str]


@dataclass(frozen=True)
class Item:
    """One thing to provision for a route: a value (none for the fallback) and the project slug it maps to."""

    kind: ItemKind
    value: str
    slug: str

    @classmethod
    def fallback(cls, slug: str) -> Item:
        return cls(ItemKind.FALLBACK, "", slug)

    @property
    def key(self) -> ItemKey:
        return (self.kind, self.value)

    @property
    def has_status(self) -> bool:
        """Mapped and auto-provisioned values get a `status.projects[]` entry; identity and fallback do not."""
        return self.kind in (ItemKind.MAPPED, ItemKind.AUTO)


class ProblemReason(StrEnum):
    """Why a whole route is not Ready (the Ready condition's reason), as opposed to one value's failure."""

    CONNECTION_NOT_FOUND = "ConnectionNotFound"
    CONNECTION_NOT_ALLOWED = "ConnectionNotAllowed"
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    INVALID_SPEC = "InvalidSpec"
    FALLBACK_UNAVAILABLE = "FallbackProjectUnavailable"


@dataclass(frozen=True)
class RouteProblem:
    reason: ProblemReason
    message: str


@dataclass(frozen=True)
class Sightings:
    """autoProvision values on Pods: which some selected Pod reports now, and when each was last seen.

    `last_seen` uses the caller's (monotonic) clock; a value stays covered until `staleAfter` past its last
    sighting. `gone_at` is the same moment as wall-clock RFC 3339 text, for values no Pod reports any more: it
    goes into the status (`lastSeen`), so a restarted operator keeps counting from there.
    """

    present: frozenset[str] = frozenset()
    last_seen: Mapping[str, float] = field(default_factory=dict)
    gone_at: Mapping[str, str] = field(default_factory=dict)


#: namespace name → its labels (what a ClusterSentryRoute's namespaceSelector is matched against)
NamespaceLabels = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class PlanInput:
    routes: Sequence[RouteSpec]
    pods: Mapping[str, Sequence[PodFacts]]  # by namespace
    parents: Parents
    connections: Mapping[str, Connection]
    sightings: Mapping[RouteKey, Sightings]
    now: float
    wall_now: float = 0.0  # epoch seconds at `now`, for `Sightings.gone_at`
    namespaces: NamespaceLabels = field(default_factory=dict)


@dataclass(frozen=True)
class RoutePlan:
    """What one live route covers right now, in a stable order (no items when the route has a problem)."""

    spec: RouteSpec
    items: tuple[Item, ...]
    problem: RouteProblem | None
    sightings: Sightings
    #: A ClusterSentryRoute with a namespaceSelector: the namespaces it selects, sorted (its entries are rendered
    #: once per namespace). None: the route's own scope (its namespace, or cluster-wide).
    covered: tuple[str, ...] | None = None

    @property
    def key(self) -> RouteKey:
        return self.spec.key


def plan_routes(snapshot: PlanInput) -> list[RoutePlan]:
    """Every live (not deleting) route's plan, in SPEC §3's route order."""
    routes = sorted((r for r in snapshot.routes if not r.deleting), key=lambda r: r.order)
    return [plan_route(spec, snapshot) for spec in routes]


def plan_route(spec: RouteSpec, snapshot: PlanInput) -> RoutePlan:
    before = snapshot.sightings.get(spec.key, Sightings())
    problem = connection_problem(spec, snapshot.connections)
    covered = covered_namespaces(spec, snapshot.namespaces)
    if problem is not None:
        return RoutePlan(spec, (), problem, before, covered)
    items = [Item(ItemKind.MAPPED, value, target) for value, target in sorted(spec.mapping.items())]
    sightings = before
    auto = spec.auto
    if auto is not None:
        pods = _pods_in_scope(spec, snapshot.pods, covered)

        def parent_of(owner: OwnerRef) -> OwnerRef | None:
            # A Pod's owner lives in the Pod's namespace; a cluster route sees Pods of the namespaces it covers.
            namespaces = (spec.scope,) if spec.scope is not None else (covered or tuple(snapshot.pods))
            for namespace in namespaces:
                parent = snapshot.parents.get((namespace, owner.kind, owner.name))
                if parent is not None:
                    return parent
            return None

        selected = pod_service_names(pods, mode=auto.derive, selector=auto.pod_selector, parent_of=parent_of)
        sightings = _sightings(
            before, set(selected), now=snapshot.now, wall_now=snapshot.wall_now, stale_after=auto.stale_after
        )
        auto_values = sorted(v for v in sightings.last_seen if v not in spec.mapping)
        items += [
            Item(ItemKind.AUTO, v, project_slug(auto.project_template, service=v, namespace=spec.namespace))
            for v in auto_values
        ]
        # Identity routes: any name a Pod of this namespace reports (selected or not) that already is a
        # project's slug; never the whole org (SPEC §3). Whether the project exists is provisioning's question.
        everyone = pod_service_names(pods, mode=auto.derive, selector=None, parent_of=parent_of)
        routed = set(spec.mapping) | set(auto_values)
        items += [Item(ItemKind.IDENTITY, v, v) for v in everyone if v not in routed and is_valid_user_slug(v)]
    if spec.fallback_project:
        items.append(Item.fallback(spec.fallback_project))
    return RoutePlan(spec, tuple(items), None, sightings, covered)


def covered_namespaces(spec: RouteSpec, namespaces: NamespaceLabels) -> tuple[str, ...] | None:
    """The namespaces a ClusterSentryRoute's namespaceSelector selects by their labels, sorted; None without one.

    Only namespaces that exist count: telemetry of a namespace the operator has not seen is not covered until
    the Namespace is (the table is re-rendered when a namespace appears, disappears or is relabelled).
    """
    selector = spec.namespace_selector
    if selector is None:
        return None
    return tuple(sorted(name for name, labels in namespaces.items() if selector.matches(labels)))


def owned_slugs(plans: Sequence[RoutePlan], *, connection: str) -> dict[str | None, frozenset[str]]:
    """Namespace → the project slugs its routes map on `connection` (mapped, auto-provisioned, fallback);
    key None: those of cluster-wide routes, which cover every namespace; a ClusterSentryRoute with a
    namespaceSelector counts for the namespaces it selects only. A value reported from namespace X may be
    identity-routed only into these (or a project created for X, SPEC §4); identity items themselves do not
    count — they are not the route author's choice."""
    owned: dict[str | None, set[str]] = {}
    for plan in plans:
        if plan.spec.connection != connection:
            continue
        scopes: tuple[str | None, ...] = (plan.spec.scope,) if plan.covered is None else plan.covered
        for scope in scopes:
            owned.setdefault(scope, set()).update(i.slug for i in plan.items if i.kind != ItemKind.IDENTITY)
    return {scope: frozenset(slugs) for scope, slugs in owned.items()}


def connection_problem(spec: RouteSpec, connections: Mapping[str, Connection]) -> RouteProblem | None:
    conn = connections.get(spec.connection)
    if conn is None:
        return RouteProblem(
            ProblemReason.CONNECTION_NOT_FOUND, f"the operator has no Sentry connection named {spec.connection!r}"
        )
    if not spec.cluster and not connection_allows(conn, spec.namespace):  # cluster-level already (SPEC §2.1)
        return RouteProblem(
            ProblemReason.CONNECTION_NOT_ALLOWED,
            f"connection {spec.connection!r} may not be used from namespace {spec.namespace!r}",
        )
    return None


def _pods_in_scope(
    spec: RouteSpec, pods: Mapping[str, Sequence[PodFacts]], covered: tuple[str, ...] | None
) -> list[PodFacts]:
    if spec.scope is not None:
        return list(pods.get(spec.scope, ()))
    namespaces = covered if covered is not None else sorted(pods)
    return [pod for namespace in namespaces for pod in pods.get(namespace, ())]


def _sightings(before: Sightings, present: set[str], *, now: float, wall_now: float, stale_after: float) -> Sightings:
    """A value's clock restarts while a Pod reports it, and when its last Pod is noticed gone (not earlier)."""
    last_seen = dict(before.last_seen)
    for value in present | (before.present - present):
        last_seen[value] = now
    fresh = {value: seen for value, seen in last_seen.items() if now - seen <= stale_after}
    gone_at = {
        value: before.gone_at.get(value) or rfc3339(wall_now - (now - seen))
        for value, seen in fresh.items()
        if value not in present
    }
    return Sightings(present=frozenset(present), last_seen=fresh, gone_at=gone_at)

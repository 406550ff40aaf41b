"""The renderer: a snapshot of plans and provisioning answers in → routes table, conflicts and statuses out.

Pure: no I/O and no clock (the caller passes `now`). Per value it decides one of

- routed to the project of a fresh Ready answer (its last good endpoint, kept through auth and transient
  failures),
- pending: a just-created project warming up, or a value with no answer and no previous entry yet,
- routed to its entry in the previous table: a value without a fresh answer (a failed call, a restart)
  keeps what the forwarders already have,
- left out: a definite failure (the project does not exist and may not be created, the slug is reserved).

`build_routes_table` then puts each piece in SPEC §3's order. Tests drive this with plain data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sentryroute.routes import ProjectEndpoint, Refused, RoutesTable

from ..connections import DEFAULT_CONNECTION
from ..derive.plan import Item, ItemKind, ProblemReason, RoutePlan, RouteProblem
from ..derive.routes import RouteKey
from ..provision.provisioner import ProjectState, Reason
from ..provision.state import RouteMemory, ValueState
from .conflicts import ConflictKey, find_conflicts
from .status import Condition, ProjectStatus, ready_condition
from .table import ClusterFallback, RouteContribution, ValueRoute, build_routes_table


@dataclass(frozen=True)
class RouteSlot:
    """Where a value's route sits in the table: (attribute, value, namespace, exact: a namespaceSelector's)."""

    attribute: str
    value: str
    namespace: str | None
    exact: bool = False


@dataclass(frozen=True)
class FallbackSlot:
    """Where a fallback sits: (attribute, namespace); namespace None is the cluster-wide fallback."""

    attribute: str
    namespace: str | None


@dataclass(frozen=True)
class PreviousEntry:
    project: str
    endpoint: ProjectEndpoint


@dataclass(frozen=True)
class PreviousTable:
    """The last table written: the entry a value without a fresh answer keeps."""

    entries: Mapping[RouteSlot | FallbackSlot, PreviousEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, table: RoutesTable | None) -> PreviousTable:
        if table is None:
            return cls()
        entries: dict[RouteSlot | FallbackSlot, PreviousEntry] = {
            RouteSlot(r.attribute, r.value, r.namespace, bool(r.exact)): PreviousEntry(
                r.project, table.projects[r.project]
            )
            for r in table.routes
        }
        for f in table.fallbacks:
            entries[FallbackSlot(f.attribute, f.namespace)] = PreviousEntry(f.project, table.projects[f.project])
        return cls(entries)

    def get(self, slot: RouteSlot | FallbackSlot) -> PreviousEntry | None:
        return self.entries.get(slot)


@dataclass(frozen=True)
class ConnectionView:
    """What rendering needs to know about a connection: its projects-map key prefix and any auth problem."""

    key_prefix: str  # "org/" or "connection:org/" when two connections share an org slug
    problem: RouteProblem | None = None

    def project_key(self, slug: str) -> str:
        return self.key_prefix + slug


@dataclass(frozen=True)
class RenderInput:
    plans: Sequence[RoutePlan]
    memories: Mapping[RouteKey, RouteMemory]
    connections: Mapping[str, ConnectionView]
    previous: PreviousTable
    now: float
    default_attribute: str = "service.name"
    cluster_fallback: ValueState | None = None  # the operator-wide fallback (default connection)
    # reported values (SPEC §4) by (namespace, value); namespace None: operator-wide (attribute-mode reports)
    reported: Mapping[tuple[str | None, str], ValueState] = field(default_factory=dict)
    auto_create: bool = False
    refused: Sequence[Refused] = ()


@dataclass(frozen=True)
class RouteStatus:
    """A route's `status.projects[]` entries, its Ready condition, and — when the table written had to leave
    some of its entries out (SPEC §3) — the `TableTruncated` message."""

    entries: tuple[ProjectStatus, ...]
    condition: Condition
    truncated: str | None = None


@dataclass(frozen=True)
class Rendered:
    table: RoutesTable
    conflicts: Mapping[ConflictKey, str]
    statuses: Mapping[RouteKey, RouteStatus]


def render(snapshot: RenderInput) -> Rendered:
    projects: dict[str, ProjectEndpoint] = {}
    contributions = []
    for plan in snapshot.plans:
        conn = snapshot.connections.get(plan.spec.connection)
        if conn is None or plan.problem is not None:
            continue
        memory = snapshot.memories.get(plan.key)
        parts: dict[ItemKind, list[ValueRoute]] = {kind: [] for kind in ItemKind}
        for item in plan.items:
            state = memory.value(item) if memory is not None else None
            parts[item.kind].append(_value_route(plan, item, state, conn, snapshot, projects))
        spec = plan.spec
        contributions.append(
            RouteContribution(
                order=spec.order,
                namespace=spec.namespace,
                attribute=spec.attribute,
                mapped=tuple(parts[ItemKind.MAPPED]),
                provisioned=tuple(parts[ItemKind.AUTO]),
                identity=tuple(parts[ItemKind.IDENTITY]),
                fallback=next((r.project for r in parts[ItemKind.FALLBACK] if r.project), None),
                covered=plan.covered,
            )
        )
    default = snapshot.connections.get(DEFAULT_CONNECTION)
    attribute = snapshot.default_attribute
    reported = _reported_routes(snapshot, default, projects)
    table = build_routes_table(
        contributions=contributions,
        projects=projects,
        cluster_fallback=_cluster_fallback(snapshot, default, projects),
        reported_identity=reported,
        unrouted="hold" if snapshot.auto_create else "drop",
        auto_create_attribute=attribute if snapshot.auto_create else None,
        refused=snapshot.refused if snapshot.auto_create else (),
    )
    conflicts = find_conflicts(contributions)
    statuses = {plan.key: _route_status(plan, snapshot, conflicts) for plan in snapshot.plans}
    return Rendered(table=table, conflicts=conflicts, statuses=statuses)


def _value_route(
    plan: RoutePlan,
    item: Item,
    state: ValueState | None,
    conn: ConnectionView,
    snapshot: RenderInput,
    projects: dict[str, ProjectEndpoint],
) -> ValueRoute:
    if state is not None:
        if state.warming(snapshot.now):
            return ValueRoute(item.value, pending=True)
        if state.good is not None:
            key = conn.project_key(item.slug)
            projects[key] = state.good
            return ValueRoute(item.value, project=key)
        if state.failed:
            return ValueRoute(item.value, pending=state.waiting_for_slug)
    spec = plan.spec
    # A selector's entries are one per covered namespace, all to one project: any of them is the previous one
    # (a namespace's own SentryRoute may sit in the same slot, hence the check of the project's slug).
    selected = plan.covered is not None
    for scope in plan.covered if plan.covered is not None else (spec.scope,):
        slot: RouteSlot | FallbackSlot = (
            FallbackSlot(spec.attribute, scope)
            if item.kind == ItemKind.FALLBACK
            else RouteSlot(spec.attribute, item.value, scope, exact=selected)
        )
        previous = snapshot.previous.get(slot)
        if previous is not None and (not selected or previous.project.rsplit("/", 1)[-1] == item.slug):
            projects[previous.project] = previous.endpoint
            return ValueRoute(item.value, project=previous.project)
    return ValueRoute(item.value, pending=item.has_status)


def _cluster_fallback(
    snapshot: RenderInput, conn: ConnectionView | None, projects: dict[str, ProjectEndpoint]
) -> ClusterFallback | None:
    state = snapshot.cluster_fallback
    if state is None or conn is None:
        return None
    attribute = snapshot.default_attribute
    if state.good is not None:
        key = conn.project_key(state.slug)
        projects[key] = state.good
        return ClusterFallback(attribute=attribute, project=key)
    previous = snapshot.previous.get(FallbackSlot(attribute, None))
    if previous is not None and not state.failed:
        projects[previous.project] = previous.endpoint
        return ClusterFallback(attribute=attribute, project=previous.project)
    return None


def _reported_routes(
    snapshot: RenderInput, conn: ConnectionView | None, projects: dict[str, ProjectEndpoint]
) -> list[tuple[str, str | None, ValueRoute]]:
    """(attribute, namespace, route) of each reported value: namespaced for a value reported from a namespace
    (SPEC §4). A value restored after a restart and not re-checked yet keeps its previous table entry."""
    if conn is None:
        return []
    attribute = snapshot.default_attribute
    out: list[tuple[str, str | None, ValueRoute]] = []
    for (namespace, value), state in sorted(snapshot.reported.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        if state.warming(snapshot.now) or state.state == ProjectState.CREATING:
            out.append((attribute, namespace, ValueRoute(value, pending=True)))
        elif state.good is not None:
            key = conn.project_key(state.slug)
            projects[key] = state.good
            out.append((attribute, namespace, ValueRoute(value, project=key)))
        elif state.result is None and (previous := snapshot.previous.get(RouteSlot(attribute, value, namespace))):
            projects[previous.project] = previous.endpoint
            out.append((attribute, namespace, ValueRoute(value, project=previous.project)))
    return out


# --- statuses --------------------------------------------------------------------------------------------


def _route_status(plan: RoutePlan, snapshot: RenderInput, conflicts: Mapping[ConflictKey, str]) -> RouteStatus:
    spec = plan.spec
    memory = snapshot.memories.get(plan.key) or RouteMemory.from_spec(spec, now=snapshot.now)
    entries = tuple(
        dataclasses.replace(
            project_status(
                plan, memory, item, now=snapshot.now, conflict=conflicts.get((spec.namespace, spec.name, item.value))
            ),
            last_seen=memory.sightings.gone_at.get(item.value) if item.kind == ItemKind.AUTO else None,
        )
        for item in plan.items
        if item.has_status
    )
    return RouteStatus(
        entries=entries, condition=ready_condition(entries, route_problem=_route_problem(plan, memory, snapshot))
    )


def _route_problem(plan: RoutePlan, memory: RouteMemory, snapshot: RenderInput) -> tuple[str, str] | None:
    problem = plan.problem
    if problem is None:
        conn = snapshot.connections.get(plan.spec.connection)
        problem = conn.problem if conn is not None else None
    if problem is None and plan.spec.problem is not None:
        problem = RouteProblem(ProblemReason.INVALID_SPEC, plan.spec.problem)
    if problem is None:
        fallback = next((memory.value(i) for i in plan.items if i.kind == ItemKind.FALLBACK), None)
        if fallback is not None and fallback.failed and fallback.result is not None:
            problem = RouteProblem(ProblemReason.FALLBACK_UNAVAILABLE, fallback.result.message)
    return None if problem is None else (str(problem.reason), problem.message)


def project_status(
    plan: RoutePlan, memory: RouteMemory, item: Item, *, now: float, conflict: str | None
) -> ProjectStatus:
    """The `status.projects[]` entry for `item`: Creating until answered and warmed up.

    Until this process has an answer, the entry written before (a restart) is kept, so a restart does not
    flip every route to Provisioning.
    """
    state = memory.value(item)
    created = memory.created(item.slug)
    value, slug = item.value, item.slug
    if state is None or state.result is None:
        entries = plan.spec.status_entries
        before = next((e for e in entries if (e.value, e.slug) == (value, slug)), None)
        kept = (ProjectState.READY, ProjectState.FAILED)
        if before is not None and before.state in kept and (state is None or not state.transient):
            return ProjectStatus(value, slug, before.id, ProjectState(before.state), created, message=before.message)
        message = f"provisioning ({state.transient})" if state is not None and state.transient else "provisioning"
        return ProjectStatus(value, slug, None, ProjectState.CREATING, created, message=message)
    result = state.result
    project_id = result.project_id or state.project_id
    if result.state == ProjectState.READY and state.warming(now):
        return ProjectStatus(value, slug, project_id, ProjectState.CREATING, created, message="created; warming up")
    if result.state == ProjectState.READY and conflict is not None:
        return ProjectStatus(value, slug, project_id, ProjectState.CONFLICT, created, Reason.CONFLICT, conflict)
    return ProjectStatus(value, slug, project_id, result.state, created, result.reason, result.message)

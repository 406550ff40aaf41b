"""What provisioning remembers between cycles: per value the last answer, per route its provenance.

The key memory is provenance: whether a route *created* a project (a 201) or adopted one. It decides
re-creation and `deletionPolicy: Delete` (SPEC §2), so it is sticky — a later adopt of the same project never
downgrades it — and it survives restarts through `status.projects[].created`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sentryroute.routes import ProjectEndpoint

from ..derive.plan import Item, ItemKey, ItemKind, Sightings
from ..derive.routes import RouteSpec
from ..timestamps import parse_rfc3339
from .provisioner import DEFINITIVE_FAILURES, ProjectState, Provisioned, Reason


@dataclass
class ValueState:
    """The last answer for one value, plus the last endpoint that worked (kept through transient trouble)."""

    slug: str
    result: Provisioned | None = None
    good: ProjectEndpoint | None = None  # the last Ready endpoint, kept through auth/transient failures
    project_id: str | None = None
    ready_at: float = 0.0  # monotonic: a just-created project stays pending until then (warmup)
    transient: str | None = None  # the last transient error, until an answer replaces it

    def warming(self, now: float) -> bool:
        return now < self.ready_at

    @property
    def state(self) -> ProjectState | None:
        return None if self.result is None else self.result.state

    @property
    def failed(self) -> bool:
        return self.state == ProjectState.FAILED

    @property
    def waiting_for_slug(self) -> bool:
        """The slug is held by a project pending deletion (often the one just deleted): retried until Sentry
        frees it, the value's data held as pending meanwhile."""
        return self.failed and self.result is not None and self.result.reason == Reason.SLUG_RESERVED

    @property
    def settled(self) -> bool:
        """Answered, without a pending retry: nothing new to learn until the next re-verification."""
        return (
            self.result is not None
            and self.transient is None
            and self.state != ProjectState.CREATING
            and not self.waiting_for_slug
        )

    def record(self, result: Provisioned, *, now: float, warmup: float) -> None:
        self.slug = result.slug
        self.result = result
        self.transient = None
        self.project_id = result.project_id or self.project_id
        if result.created:
            self.ready_at = now + warmup
        if result.state == ProjectState.READY and result.endpoint is not None:
            self.good = result.endpoint
        elif result.state == ProjectState.FAILED and result.reason in DEFINITIVE_FAILURES:
            self.good = None
            if result.reason == Reason.NOT_FOUND:
                self.project_id = None


ADOPTED_NOT_RECREATED = (
    "it was adopted, not created by sentryroute, so it is not re-created: create it in Sentry again or change the route"
)
RECREATE_OFF = 'it is not re-created because the route has the annotation sentryroute.dev/recreate: "false"'


def gone_if_known(result: Provisioned, before: ValueState | None, *, why: str) -> Provisioned:
    """A NotFound for a value that had a project is `ProjectGone`: the project was deleted in Sentry.

    The value stays routed to the gone project (its last endpoint is kept), so the forwarders hold its data
    and drop it, counted, when their hold expires, instead of re-routing it as unrouted.
    """
    if result.reason != Reason.NOT_FOUND or before is None or before.project_id is None:
        return result
    message = (
        f"project {result.slug} (id {before.project_id}) no longer exists in Sentry; {why}; the forwarders hold "
        "its data up to their --max-hold, then drop it"
    )
    return dataclasses.replace(result, reason=Reason.PROJECT_GONE, project_id=before.project_id, message=message)


@dataclass
class RouteMemory:
    """One SentryRoute's provisioning memory; dropped (and re-seeded from status) when its uid changes."""

    uid: str
    values: dict[ItemKey, ValueState] = field(default_factory=dict)
    provenance: dict[str, bool] = field(default_factory=dict)  # slug → created by this route
    sightings: Sightings = field(default_factory=Sightings)
    current: tuple[Item, ...] = ()  # what the route covers now (the last plan)
    suspect: set[ItemKey] = field(default_factory=set)  # items a forwarder reported Sentry refused: verify now
    planned: tuple[Item, ...] = ()  # what the last provisioning task started with
    planned_inputs: tuple[object, ...] = ()
    verify_due: bool = True
    retry_at: float | None = None
    last_status: dict[str, object] | None = None

    @classmethod
    def from_spec(cls, spec: RouteSpec, *, now: float, wall_now: float | None = None) -> RouteMemory:
        """Seed provenance and stale tracking from the status the route carries (written before a restart).

        A value with `lastSeen` (its last Pod was gone before the restart) keeps counting `staleAfter` from that
        time; any other auto value is counted from now (its Pods, if any, are seen again at the first plan).
        """
        memory = cls(uid=spec.uid)
        last_seen: dict[str, float] = {}
        gone_at: dict[str, str] = {}
        for entry in spec.status_entries:
            if entry.created:
                memory.provenance[entry.slug] = True
            elif entry.id:
                memory.provenance.setdefault(entry.slug, False)
            if entry.value in spec.mapping:
                continue
            seen = parse_rfc3339(entry.last_seen) if entry.last_seen and wall_now is not None else None
            if seen is not None and wall_now is not None:
                last_seen[entry.value] = now - max(0.0, wall_now - seen)
                gone_at[entry.value] = entry.last_seen or ""
            else:
                last_seen[entry.value] = now
        memory.sightings = Sightings(last_seen=last_seen, gone_at=gone_at)
        return memory

    def value(self, item: Item) -> ValueState | None:
        """The state of `item`, or None when there is none or it was for another slug (the mapping changed)."""
        state = self.values.get(item.key)
        return state if state is not None and state.slug == item.slug else None

    def created(self, slug: str) -> bool:
        return self.provenance.get(slug, False)

    def may_create(self, spec: RouteSpec, item: Item) -> bool:
        """Create only for autoProvision routes with a team; re-create only what this route created."""
        auto = spec.auto
        if not item.has_status or auto is None or not auto.team:
            return False
        created = self.provenance.get(item.slug)
        if created is None:
            return True
        return created and spec.recreate

    def remember_provenance(self, item: Item, result: Provisioned) -> None:
        if item.kind not in (ItemKind.MAPPED, ItemKind.AUTO):
            return
        if result.created:
            self.provenance[item.slug] = True
        elif result.project_id and item.slug not in self.provenance:
            self.provenance[item.slug] = False

    def created_slugs(self) -> list[str]:
        return sorted(s for s, created in self.provenance.items() if created)

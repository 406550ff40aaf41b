"""What the operator remembers about one SentryRoute between reconciles.

The key memory is provenance: whether this route *created* a project (a 201) or adopted one. It decides
re-creation and `deletionPolicy: Delete` (SPEC §2), so it is sticky — a later adopt of the same project never
downgrades it — and it survives restarts through `status.projects[].created`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from sentryroute.routes import ProjectEndpoint

from .provision import Provisioned
from .status import ProjectStatus
from .watch.routes import RouteSpec

ItemKind = Literal["mapped", "auto", "identity", "fallback"]
#: Failure reasons that say something about the project itself; other failures (auth, API errors)
#: keep the last good table entry, because the project and its key most likely still work.
DEFINITIVE_FAILURES = frozenset({"NotFound", "SlugReserved", "NoActiveKey", "InvalidDsn", "InvalidSlug", "NoTeam"})


@dataclass(frozen=True)
class Item:
    """One thing to provision for a route: a value (or the route's fallback) and the slug it maps to."""

    kind: ItemKind
    value: str
    slug: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.value)


@dataclass
class ValueState:
    slug: str
    result: Provisioned | None = None
    good: ProjectEndpoint | None = None  # the last Ready endpoint, kept through auth/transient failures
    project_id: str | None = None
    ready_at: float = 0.0  # monotonic: a just-created project stays pending until then (warmup)
    transient: str | None = None

    def warming(self, now: float) -> bool:
        return now < self.ready_at

    def record(self, result: Provisioned, *, warmup: float) -> None:
        self.slug = result.slug
        self.result = result
        self.transient = None
        self.project_id = result.project_id or self.project_id
        if result.created:
            self.ready_at = time.monotonic() + warmup
        if result.state == "Ready" and result.endpoint is not None:
            self.good = result.endpoint
        elif result.state == "Failed" and result.reason in DEFINITIVE_FAILURES:
            self.good = None
            if result.reason == "NotFound":
                self.project_id = None


@dataclass
class RouteRuntime:
    spec: RouteSpec
    values: dict[tuple[str, str], ValueState] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)  # auto value → monotonic time a Pod last had it
    present: set[str] = field(default_factory=set)  # auto values some selected Pod reports right now
    provenance: dict[str, bool] = field(default_factory=dict)  # slug → created by this route
    desired: tuple[Item, ...] = ()  # what the route covers now (planned every cycle)
    planned: tuple[Item, ...] = ()  # what the last provisioning task started with
    problem: tuple[str, str] | None = None  # (reason, message) that stops this route entirely
    planned_inputs: tuple[object, ...] = ()
    verify_due: bool = True
    retry_at: float | None = None
    last_status: dict[str, object] | None = None

    @classmethod
    def from_spec(cls, spec: RouteSpec, *, now: float) -> RouteRuntime:
        """Seed provenance and stale tracking from the status the route carries (written before a restart)."""
        runtime = cls(spec=spec)
        for entry in spec.status_entries:
            if entry.created:
                runtime.provenance[entry.slug] = True
            elif entry.id:
                runtime.provenance.setdefault(entry.slug, False)
            if entry.value not in spec.mapping:
                runtime.last_seen[entry.value] = now  # keep routing it for staleAfter past the restart
        return runtime

    def may_create(self, item: Item) -> bool:
        """Create only for autoProvision routes with a team; re-create only what this route created."""
        auto = self.spec.auto
        if item.kind not in ("mapped", "auto") or auto is None or not auto.team:
            return False
        created = self.provenance.get(item.slug)
        if created is None:
            return True
        return created and self.spec.recreate

    def project_status(self, item: Item, *, now: float, conflict: str | None) -> ProjectStatus:
        """The `status.projects[]` entry for `item`: Creating until answered and warmed up.

        Until this process has an answer, the entry written before (a restart) is kept, so a restart does not
        flip every route to Provisioning.
        """
        state = self.values.get(item.key)
        created = self.provenance.get(item.slug, False)
        if state is None or state.slug != item.slug or state.result is None:
            before = next((e for e in self.spec.status_entries if (e.value, e.slug) == (item.value, item.slug)), None)
            if before is not None and before.state in ("Ready", "Failed") and (state is None or not state.transient):
                return ProjectStatus(item.value, item.slug, before.id, before.state, created, message=before.message)
            message = f"provisioning ({state.transient})" if state is not None and state.transient else "provisioning"
            return ProjectStatus(item.value, item.slug, None, "Creating", created, message=message)
        result = state.result
        project_id = result.project_id or state.project_id
        if result.state == "Ready" and state.warming(now):
            return ProjectStatus(item.value, item.slug, project_id, "Creating", created, message="created; warming up")
        if result.state == "Ready" and conflict is not None:
            return ProjectStatus(item.value, item.slug, project_id, "Conflict", created, "Conflict", conflict)
        return ProjectStatus(item.value, item.slug, project_id, result.state, created, result.reason, result.message)

    def created_slugs(self) -> list[str]:
        return sorted(s for s, created in self.provenance.items() if created)

"""The reconcile loop: watch state in, provisioned projects and one routes table out (SPEC §3, §5).

One loop owns the table. It runs as a kopf daemon, so it starts only after kopf has listed every indexed
resource (SentryRoutes, ClusterSentryRoutes, Pods, Namespaces, ReplicaSets, Jobs) — the start-up barrier —
and it is stopped while a peer with a higher priority is active. Each cycle is a thin pass over the core's parts:

1. `derive.plan` — the planner: routes, Pods and connections → what each route covers (pure);
2. `provision.scheduler` — starts a provisioning task per route whose plan changed or whose retry or
   re-verification is due; tasks run concurrently and poke the loop as answers arrive;
3. `render.renderer` — plans and answers → the routes table, conflicts and statuses (pure); the table is
   written when its revision changed, each route's status when it changed (`render.status_writer`);
4. `derive.reports` — the report channel's intake (SPEC §4), fed by the report ConfigMap watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from sentryroute.routes import RoutesTable

from .connections import DEFAULT_CONNECTION, Connection, token_source
from .derive import OwnerRef, PodFacts
from .derive.plan import ItemKind, PlanInput, ProblemReason, RoutePlan, RouteProblem, owned_slugs, plan_routes
from .derive.reports import ReportIntake
from .derive.routes import RouteKey, RouteSpec
from .kubeio import KubeApiError, KubeIO
from .provision import SentryApi, SentryApiError, TransientError, ensure_project, provenance
from .provision.announce import EventReason, EventType, post_event
from .provision.autocreate import AutoCreatePolicy
from .provision.catalog import ConnectionRuntime
from .provision.reported import ReportedValues, ValueKey
from .provision.route_task import provision_route
from .provision.scheduler import Scheduler, TaskKey, TaskKind
from .provision.state import RouteMemory, ValueState
from .render.configmap import RoutesConfigMap
from .render.confirm import confirm_written, routed_for, routed_namespaces
from .render.renderer import ConnectionView, PreviousTable, RenderInput, render
from .render.status_writer import StatusWriter
from .settings import OperatorSettings

log = logging.getLogger(__name__)

#: Longest sleep between cycles when nothing is due; anything due earlier wakes the loop sooner.
MAX_IDLE = 30.0
#: Shortest time between two renders: while many values are provisioned one by one, the forwarders get a
#: few table updates (and each route a few status writes) instead of one per value.
MIN_RENDER_INTERVAL = 0.5
#: Retry delay for values still Creating or hit by a transient error (capped by the reverify interval).
RETRY_DELAY = 5.0
#: A value a forwarder keeps reporting as refused by Sentry is re-verified at most this often (capped by the
#: reverify interval): an adopted project that is gone stays gone, and each check costs Web API calls.
HEAL_COOLDOWN = 30.0


@dataclass(frozen=True)
class Indexes:
    """kopf's live indexes, as handed to the daemon (typed like kopf hands them)."""

    routes: kopf.Index[RouteKey, RouteSpec]
    cluster_routes: kopf.Index[RouteKey, RouteSpec]  # ClusterSentryRoutes, keyed ("", name)
    pods: kopf.Index[str, PodFacts]
    namespaces: kopf.Index[str, dict[str, str]]  # name → labels (ClusterSentryRoute namespaceSelectors)
    replicaset_parents: kopf.Index[tuple[str, str], OwnerRef]
    job_parents: kopf.Index[tuple[str, str], OwnerRef]


class _Parents(Mapping[tuple[str, str, str], OwnerRef]):
    """(namespace, kind, name) → controller, read through the ReplicaSet and Job indexes (no copy per cycle)."""

    def __init__(self, indexes: Indexes) -> None:
        self._by_kind = {"ReplicaSet": indexes.replicaset_parents, "Job": indexes.job_parents}

    def __getitem__(self, key: tuple[str, str, str]) -> OwnerRef:
        namespace, kind, name = key
        index = self._by_kind.get(kind)
        owner = next(iter(index.get((namespace, name), ())), None) if index is not None else None
        if owner is None:
            raise KeyError(key)
        return owner

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        for kind, index in self._by_kind.items():
            for namespace, name in index:
                yield (namespace, kind, name)

    def __len__(self) -> int:
        return sum(len(index) for index in self._by_kind.values())


class Engine:
    def __init__(self, settings: OperatorSettings, *, kube: KubeIO, connections: Mapping[str, Connection]) -> None:
        self.settings = settings
        self.kube = kube
        self.routes_configmap = RoutesConfigMap(kube, settings.routes_configmap, size_limit=settings.routes_size_limit)
        self.status_writer = StatusWriter(kube)
        self._connection_defs = dict(connections)
        self.connections: dict[str, ConnectionRuntime] = {}
        self.memories: dict[RouteKey, RouteMemory] = {}
        self.scheduler = Scheduler(on_done=self.poke)
        self._wake = asyncio.Event()
        self.previous = PreviousTable()
        self._cluster_fallback = ValueState(slug=settings.fallback_project or "")
        self.intake = ReportIntake()
        self.reported = ReportedValues(
            attribute=settings.default_attribute,
            auto_create=settings.auto_create,
            team=settings.auto_create_team,
            policy=AutoCreatePolicy(deny=settings.auto_create_deny, per_hour=settings.auto_create_rate),
        )
        self._reported_checked_at = 0.0
        self._owned: Mapping[str | None, frozenset[str]] = {}  # namespace (None: cluster-wide) → slugs its routes map
        self._provenance_written: str | None = None  # the reported-values annotation as last read or written
        self._catalog_retry_at = 0.0
        self._healed_at: dict[tuple[str, str], float] = {}
        self._configmap_verified_at = 0.0
        self._rendered_at = -MIN_RENDER_INTERVAL
        self._render_held = False
        self.indexes: Indexes | None = None
        self.table: RoutesTable | None = None
        self.size_problem: str | None = None
        self.cycles = 0  # loop iterations: a test checks that an idle operator stays idle

    # --- lifecycle -------------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Open one API client per connection and pre-create the report ConfigMap (SPEC §4)."""
        if not self._connection_defs:
            log.warning(
                "No Sentry connection is configured (--connections, or SENTRY_URL/SENTRY_ORG_SLUG and a "
                "token): nothing can be provisioned and no routes table will be written"
            )
        shared_orgs = _shared_org_slugs(self._connection_defs.values())
        for name, conn in self._connection_defs.items():
            if name in self.connections:
                continue
            source = token_source(conn, read_secret=self.kube.read_secret_data, namespace=self.settings.namespace)
            api = SentryApi(base_url=conn.url, org=conn.org_slug, token=source)
            prefix = f"{name}:{conn.org_slug}/" if conn.org_slug in shared_orgs else f"{conn.org_slug}/"
            self.connections[name] = ConnectionRuntime(
                conn, api, key_prefix=prefix, max_age=self.settings.reverify_interval
            )
        await self._ensure_report_configmap()

    async def close(self) -> None:
        await self.scheduler.close()
        for runtime in self.connections.values():
            await runtime.api.close()
        self.connections.clear()

    def poke(self) -> None:
        """Something changed (a watch event, a finished task): run a cycle soon."""
        self._wake.set()

    def request_reverify(self, key: RouteKey) -> None:
        """The kopf timer: re-check this route's projects and keys against Sentry (deleted projects, rotated keys)."""
        memory = self.memories.get(key)
        spec = self._spec(key)
        if memory is not None and spec is not None:
            memory.verify_due = True
            conn = self.connections.get(spec.connection)
            age = None if conn is None or conn.listed_at is None else time.monotonic() - conn.listed_at
            if conn is not None and age is not None and age >= self.settings.reverify_interval / 2:
                conn.invalidate()
        self._cluster_fallback.result = None  # re-check the cluster-wide fallback too
        self.reported.due = True
        self.poke()

    def update_reports(self, data: Mapping[str, str] | None) -> None:
        """The report ConfigMap changed (SPEC §4): new values to route or create, or projects to re-check."""
        update = self.intake.update(data)
        if update.deleted:
            self._start(TaskKey(TaskKind.REPORT_CONFIGMAP), self._ensure_report_configmap())
            return
        self.reported.pending_reports = self.intake.reports
        if update.fresh:
            self.reported.due = True
        if update.refused_values:
            self.heal(update.refused_values, now=time.monotonic())
        self.poke()

    def heal(self, values: Iterable[tuple[str, str]], *, now: float) -> None:
        """Forwarders report Sentry refused these routed (attribute, value)s (403 ProjectId, 401): the project was
        deleted or its key revoked or rotated. Re-verify exactly those projects and keys now, not at the next
        periodic re-verification."""
        cooldown = min(HEAL_COOLDOWN, self.settings.reverify_interval)
        self._healed_at = {k: at for k, at in self._healed_at.items() if now - at < cooldown}
        for attribute, value in values:
            if (attribute, value) in self._healed_at:
                continue
            self._healed_at[(attribute, value)] = now
            found = attribute == self.settings.default_attribute and self.reported.heal(value)
            for key, memory in self.memories.items():
                spec = self._spec(key)
                items = [i for i in memory.current if i.value == value and i.kind != ItemKind.FALLBACK]
                if items and spec is not None and spec.attribute == attribute:
                    memory.suspect |= {i.key for i in items}
                    found = True
            if not found:  # the value reached Sentry through a fallback: check the fallbacks
                for memory in self.memories.values():
                    memory.suspect |= {i.key for i in memory.current if i.kind == ItemKind.FALLBACK}
                self._cluster_fallback.result = None
            log.info("A forwarder reports Sentry refused the project of %s=%r: re-verifying it", attribute, value[:100])
        for conn in self.connections.values():
            conn.invalidate()  # the catalog may still list a deleted project

    async def _ensure_report_configmap(self) -> None:
        if await self.kube.create_configmap(self.settings.report_configmap, {}):
            log.info("Created the report ConfigMap %s", self.settings.report_configmap)

    async def run(self, indexes: Indexes, *, stopped: Any) -> None:
        """The daemon body: cycle until kopf stops the daemon (shutdown, or paused by a peer)."""
        self.indexes = indexes
        stored = await self.routes_configmap.read()  # one GET for the table and the remembered values
        self.previous = PreviousTable.of(stored.table)
        self._restore_provenance(stored.annotations.get(provenance.ANNOTATION))
        self._configmap_verified_at = time.monotonic()  # just read: the first write need not read it again

        async def wake_on_stop() -> None:
            await stopped.wait()
            self.poke()

        watcher = asyncio.create_task(wake_on_stop())
        try:
            while not stopped:
                self.cycles += 1
                self._wake.clear()
                await self.cycle(time.monotonic())
                timeout = min(max(self._next_deadline(time.monotonic()) - time.monotonic(), 0.05), MAX_IDLE)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        finally:
            watcher.cancel()
            await self.scheduler.close()

    async def cycle(self, now: float) -> None:
        """Plan, start due provisioning, and (at most every MIN_RENDER_INTERVAL) render and write."""
        plans = self._plan(now)
        self._schedule(plans, now)
        self._render_held = self.ready and now < self._rendered_at + MIN_RENDER_INTERVAL
        if self.ready and not self._render_held:
            self._rendered_at = now
            await self._render_and_write(plans, now)

    @property
    def ready(self) -> bool:
        """The start-up barrier: indexes listed (we run inside the daemon) and one org listing succeeded."""
        return self.indexes is not None and any(c.listed for c in self.connections.values())

    def _start(self, key: TaskKey, coro: Any) -> None:
        if self.scheduler.running(key):
            coro.close()
            return
        self.scheduler.start(key, coro)

    # --- 1. plan ---------------------------------------------------------------------------------------

    def _specs(self) -> dict[RouteKey, RouteSpec]:
        assert self.indexes is not None
        both = [*self.indexes.routes.items(), *self.indexes.cluster_routes.items()]
        return {key: spec for key, store in both for spec in store}

    def _spec(self, key: RouteKey) -> RouteSpec | None:
        if self.indexes is None:
            return None
        index = self.indexes.cluster_routes if key[0] == "" else self.indexes.routes
        return next(iter(index.get(key, ())), None)

    def _plan(self, now: float) -> list[RoutePlan]:
        assert self.indexes is not None
        wall_now = time.time() - (time.monotonic() - now)
        specs = self._specs()
        for key, spec in specs.items():
            memory = self.memories.get(key)
            if memory is None or memory.uid != spec.uid:
                self.memories[key] = RouteMemory.from_spec(spec, now=now, wall_now=wall_now)
        for key in set(self.memories) - set(specs):
            del self.memories[key]
            self.scheduler.forget(_route_task(key))
        plans = plan_routes(
            PlanInput(
                routes=tuple(specs.values()),
                pods={namespace: tuple(store) for namespace, store in self.indexes.pods.items()},
                parents=_Parents(self.indexes),
                connections=self._connection_defs,
                sightings={key: memory.sightings for key, memory in self.memories.items()},
                now=now,
                wall_now=wall_now,
                namespaces={name: labels for name, store in self.indexes.namespaces.items() for labels in store},
            )
        )
        for plan in plans:
            memory = self.memories[plan.key]
            memory.sightings, memory.current = plan.sightings, plan.items
        self._owned = owned_slugs(plans, connection=DEFAULT_CONNECTION)
        return plans

    # --- 2. provision ----------------------------------------------------------------------------------

    def _schedule(self, plans: list[RoutePlan], now: float) -> None:
        for plan in plans:
            conn = self.connections.get(plan.spec.connection)
            key = _route_task(plan.key)
            if plan.problem is not None or conn is None or self.scheduler.running(key):
                continue
            memory = self.memories[plan.key]
            changed = plan.items != memory.planned or plan.spec.inputs() != memory.planned_inputs
            if changed or memory.verify_due or memory.suspect or self.scheduler.due(key, now):
                self._start(key, self._provision_route(plan, memory, conn))
        self._schedule_catalog_and_fallback(now)
        self._schedule_reported(now)

    async def _provision_route(self, plan: RoutePlan, memory: RouteMemory, conn: ConnectionRuntime) -> None:
        memory.planned, memory.planned_inputs = plan.items, plan.spec.inputs()
        verify, memory.verify_due = memory.verify_due, False
        suspect, memory.suspect = frozenset(memory.suspect), set()
        retry = await provision_route(
            plan,
            memory,
            conn,
            verify=verify,
            suspect=suspect,
            warmup=self.settings.new_project_warmup,
            progress=self.poke,
        )
        if retry:
            self.scheduler.retry(_route_task(plan.key), time.monotonic() + self._retry_delay)

    @property
    def _retry_delay(self) -> float:
        return min(RETRY_DELAY, self.settings.reverify_interval)

    def _schedule_catalog_and_fallback(self, now: float) -> None:
        """List every connection's projects until one listing succeeds (the barrier needs one even with no
        routes), and keep the cluster-wide fallback project's endpoint fresh."""
        if not self.ready and now >= self._catalog_retry_at:
            self._catalog_retry_at = now + self._retry_delay
            for name, conn in self.connections.items():
                self._start(TaskKey(TaskKind.CATALOG, name), _refresh(conn))
        default = self.connections.get(DEFAULT_CONNECTION)
        state = self._cluster_fallback
        key = TaskKey(TaskKind.CLUSTER_FALLBACK)
        wanted = self.settings.fallback_project and default is not None and not self.scheduler.running(key)
        if wanted and default is not None and state.result is None and now >= state.ready_at:
            state.ready_at = now + self._retry_delay
            self._start(key, self._provision_cluster_fallback(default))

    def _schedule_reported(self, now: float) -> None:
        default = self.connections.get(DEFAULT_CONNECTION)
        key = TaskKey(TaskKind.REPORTED)
        if default is None or self.scheduler.running(key) or not self.ready:
            return
        if now - self._reported_checked_at >= self.settings.reverify_interval:
            self.reported.due = True  # re-check refusals (the hourly cap frees up) and unanswered values
            self._reported_checked_at = now
        values = self.reported.candidates(self._routed_keys())
        if values:
            provision = self.reported.provision(
                default, values, warmup=self.settings.new_project_warmup, owned=self._owned_by
            )
            self._start(key, provision)

    def _owned_by(self, namespace: str) -> frozenset[str]:
        """Project slugs the routes of `namespace` (and cluster-wide routes) map on the default connection."""
        return self._owned.get(namespace, frozenset()) | self._owned.get(None, frozenset())

    def _routed_keys(self) -> set[ValueKey]:
        """Reported keys the written table already routes: an operator-wide key by any route of its value, a
        namespaced one by a route of its namespace or a cluster-wide route."""
        attribute = self.settings.default_attribute
        present = routed_namespaces(self.table)
        reported = self.reported
        keys = {k for k in map(reported.key_of, reported.pending_reports) if k is not None}
        keys |= set(reported.states) | set(reported.refused)
        return {
            (namespace, value) for namespace, value in keys if routed_for(present.get((attribute, value)), namespace)
        }

    async def _provision_cluster_fallback(self, conn: ConnectionRuntime) -> None:
        state = self._cluster_fallback
        catalog = await conn.refresh()
        try:
            result = await ensure_project(
                conn.api, slug=state.slug, team=None, platform="other", create=False, known=catalog
            )
        except TransientError as exc:
            state.transient = str(exc)
            return
        state.record(result, now=time.monotonic(), warmup=0.0)
        state.ready_at = 0.0

    # --- 3. render and write ---------------------------------------------------------------------------

    def _render_input(self, plans: list[RoutePlan], now: float) -> RenderInput:
        views = {}
        for name, conn in self.connections.items():
            problem = None
            if conn.auth_problem is not None:
                exc = conn.auth_problem
                reason = ProblemReason.UNAUTHORIZED if exc.status in (None, 401) else ProblemReason.FORBIDDEN
                problem = RouteProblem(reason, str(exc))
            views[name] = ConnectionView(key_prefix=conn.key_prefix, problem=problem)
        return RenderInput(
            plans=plans,
            memories=self.memories,
            connections=views,
            previous=self.previous,
            now=now,
            default_attribute=self.settings.default_attribute,
            cluster_fallback=self._cluster_fallback if self.settings.fallback_project else None,
            reported=self.reported.states,
            auto_create=self.settings.auto_create,
            refused=self.reported.refusals(),
        )

    async def _render_and_write(self, plans: list[RoutePlan], now: float) -> None:
        rendered = render(self._render_input(plans, now))
        # Now and then re-read the ConfigMap instead of trusting memory: someone may have deleted or edited it.
        verify = now - self._configmap_verified_at >= self.settings.reverify_interval
        if verify:
            self._configmap_verified_at = now
        try:
            result = await self.routes_configmap.write(rendered.table, verify=verify, previous=self.table)
        except KubeApiError as exc:  # keep provisioning; write on a later cycle
            log.warning("Writing the routes table failed, retrying: %s", exc)
            self._render_held = True
            return
        self.size_problem = result.size.describe() if result.size.near_limit else None
        if result.table is not None and not result.size.too_large:
            self.table = result.table
            self.previous = PreviousTable.of(result.table)
        # Ready only for what the ConfigMap now holds (SPEC §3), not for what was rendered.
        statuses = confirm_written(plans, rendered.statuses, result.table, truncated=result.fitted.truncated)
        await self.status_writer.write(plans, statuses, size_problem=self.size_problem)
        await self._persist_provenance()
        await self._remove_handled_reports()

    def _restore_provenance(self, text: str | None) -> None:
        """Take back which reported values had projects, and which sentryroute created (SPEC §4), from the
        routes ConfigMap's annotation `text` as read at start."""
        entries = provenance.decode(text)
        self.reported.restore(entries)
        self._provenance_written = text
        if entries:
            log.info("Restored %d reported values (and which projects sentryroute created for them)", len(entries))

    async def _persist_provenance(self) -> None:
        text = provenance.encode(self.reported.remembered())
        if text == self._provenance_written or (self._provenance_written is None and text == "[]"):
            return
        try:
            await self.kube.patch_configmap_annotation(self.settings.routes_configmap, provenance.ANNOTATION, text)
        except KubeApiError as exc:  # the ConfigMap may not exist yet: the next cycle tries again
            log.warning("Remembering reported values in the routes ConfigMap failed: %s", exc)
            return
        self._provenance_written = text

    async def _remove_handled_reports(self) -> None:
        """Delete report entries we are done with, so forwarders can report new values (1000-key cap)."""
        keys = self.intake.removable(self.reported.handled_keys(self._routed_keys()))
        if not keys:
            return
        try:
            await self.kube.patch_configmap_data(self.settings.report_configmap, dict.fromkeys(keys))
        except KubeApiError as exc:
            log.warning("Removing handled entries from the report ConfigMap failed: %s", exc)
            return
        self.intake.removed(keys)

    # --- deletion --------------------------------------------------------------------------------------

    async def delete_created_projects(self, spec: RouteSpec) -> None:
        """`deletionPolicy: Delete`: delete the projects this route created (never adopted ones)."""
        memory = self.memories.get(spec.key) or RouteMemory.from_spec(spec, now=time.monotonic())
        conn = self.connections.get(spec.connection)
        plan_problem = None if conn is not None else f"no connection named {spec.connection!r}"
        if conn is None:
            log.warning("Not deleting projects of SentryRoute %s/%s: %s", spec.namespace, spec.name, plan_problem)
            return
        for slug_ in memory.created_slugs():
            try:
                await conn.api.delete_project(slug_)
            except TransientError as exc:
                raise kopf.TemporaryError(f"deleting project {slug_}: {exc}", delay=RETRY_DELAY) from None
            except SentryApiError as exc:
                post_event(spec.object_ref(), EventType.WARNING, EventReason.DELETE_FAILED, f"project {slug_}: {exc}")
                continue
            post_event(spec.object_ref(), EventType.NORMAL, EventReason.PROJECT_DELETED, f"Deleted project {slug_}")
        conn.invalidate()

    # --- timing ----------------------------------------------------------------------------------------

    def _next_deadline(self, now: float) -> float:
        deadlines = [now + MAX_IDLE]
        # A value still warming at the last render (whose clock was read at the start of that cycle) needs one
        # more render once warm, even if it has warmed up since: comparing with `now` would miss it.
        rendered_at = min(self._rendered_at, now)
        if self._render_held:
            deadlines.append(self._rendered_at + MIN_RENDER_INTERVAL)
        retry = self.scheduler.next_deadline()
        if retry is not None:
            deadlines.append(retry)
        specs = self._specs() if self.indexes is not None else {}
        for key, memory in self.memories.items():
            deadlines += [s.ready_at for s in memory.values.values() if s.ready_at > rendered_at]
            spec = specs.get(key)
            if spec is not None and spec.auto is not None:
                deadlines += [seen + spec.auto.stale_after for seen in memory.sightings.last_seen.values()]
        deadlines += [s.ready_at for s in self.reported.states.values() if s.ready_at > rendered_at]
        if self.reported.pending_reports or self.reported.refused:
            deadlines.append(self._reported_checked_at + self.settings.reverify_interval)
        if not self.ready:
            deadlines.append(self._catalog_retry_at)
        fallback = self._cluster_fallback
        if self.settings.fallback_project and fallback.result is None:
            deadlines.append(fallback.ready_at)
        return min(deadlines)


async def _refresh(conn: ConnectionRuntime) -> None:
    await conn.refresh()


def _route_task(key: RouteKey) -> TaskKey:
    return TaskKey(TaskKind.ROUTE, f"{key[0]}/{key[1]}")


def _shared_org_slugs(connections: Iterable[Connection]) -> set[str]:
    seen: dict[str, int] = {}
    for conn in connections:
        seen[conn.org_slug] = seen.get(conn.org_slug, 0) + 1
    return {org for org, count in seen.items() if count > 1}

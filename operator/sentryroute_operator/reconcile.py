"""The reconcile loop: watch state in, provisioned projects and one routes table out (SPEC §3, §5).

One loop owns the table. It runs as a kopf daemon, so it starts only after kopf has listed every indexed
resource (SentryRoutes, Pods, ReplicaSets, Jobs) — the start-up barrier — and it is stopped while a peer
with a higher priority is active. Each cycle it

1. syncs the per-route memory with the SentryRoute index,
2. plans each route's items (mapping values, values derived from Pods, identity candidates, fallback) and
   starts a provisioning task for every route whose plan changed — tasks run concurrently, so one route
   waiting on a Web API 429 never holds up another route or the table,
3. renders the table from whatever is known (a value without a fresh answer keeps its previous entry),
   writes it when its revision changed, and writes each route's status when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from sentryroute.routes import ProjectEndpoint, RoutesTable, is_valid_user_slug

from .autocreate import AutoCreatePolicy
from .catalog import ConnectionRuntime
from .connections import DEFAULT_CONNECTION, Connection, connection_allows, token_source
from .derive import OwnerRef, PodFacts
from .derive.route_values import pod_service_names, project_slug
from .kubeio import KubeIO
from .metrics import PROJECTS_CREATED, PROVISIONING_FAILURES
from .provision import Provisioned, SentryApi, TransientError, ensure_project
from .render.configmap import RoutesConfigMap
from .render.conflicts import ConflictKey, find_conflicts
from .render.table import ClusterFallback, RouteContribution, ValueRoute, build_routes_table
from .reported import ReportedValues
from .routestate import Item, RouteRuntime, ValueState
from .settings import OperatorSettings
from .status import ready_condition, same_status, status_body
from .watch.report_watch import ReportWatcher
from .watch.reports import parse_reports
from .watch.routes import RouteKey, RouteSpec

log = logging.getLogger(__name__)

#: Longest sleep between cycles when nothing is due; anything due earlier wakes the loop sooner.
MAX_IDLE = 30.0
#: Shortest time between two renders: while many values are provisioned one by one, the forwarders get a
#: few table updates (and each route a few status writes) instead of one per value.
MIN_RENDER_INTERVAL = 0.5
#: Retry delay for values still Creating or hit by a transient error (capped by the reverify interval).
RETRY_DELAY = 5.0
_PreviousKey = tuple[str, str, str | None]
_FALLBACK_VALUE = "\0fallback"


@dataclass(frozen=True)
class Indexes:
    """kopf's live indexes (Mapping key → Store of values), as handed to the daemon."""

    routes: Mapping[RouteKey, Iterable[RouteSpec]]
    pods: Mapping[str, Iterable[PodFacts]]
    replicaset_parents: Mapping[tuple[str, str], Iterable[OwnerRef]]
    job_parents: Mapping[tuple[str, str], Iterable[OwnerRef]]


@dataclass(frozen=True)
class _Previous:
    project: str
    endpoint: ProjectEndpoint


class Engine:
    def __init__(self, settings: OperatorSettings, *, kube: KubeIO, connections: Mapping[str, Connection]) -> None:
        self.settings = settings
        self.kube = kube
        self.routes_configmap = RoutesConfigMap(kube, settings.routes_configmap, size_limit=settings.routes_size_limit)
        self._connection_defs = dict(connections)
        self.connections: dict[str, ConnectionRuntime] = {}
        self.runtimes: dict[RouteKey, RouteRuntime] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._previous: dict[_PreviousKey, _Previous] = {}
        self._cluster_fallback = ValueState(slug=settings.fallback_project or "")
        self._catalog_retry_at = 0.0
        self.reported = ReportedValues(
            attribute=settings.default_attribute,
            auto_create=settings.auto_create,
            team=settings.auto_create_team,
            policy=AutoCreatePolicy(deny=settings.auto_create_deny, per_hour=settings.auto_create_rate),
        )
        self._report_removals: set[str] = set()
        self._malformed_reports: list[str] = []
        self._reported_checked_at = 0.0
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
            source = token_source(conn, core_v1_api_factory=self.kube.core_v1, namespace=self.settings.namespace)
            api = SentryApi(base_url=conn.url, org=conn.org_slug, token=source)
            prefix = f"{name}:{conn.org_slug}/" if conn.org_slug in shared_orgs else f"{conn.org_slug}/"
            self.connections[name] = ConnectionRuntime(
                conn, api, key_prefix=prefix, max_age=self.settings.reverify_interval
            )
        if await self.kube.create_configmap(self.settings.report_configmap, {}):
            log.info("Created the report ConfigMap %s", self.settings.report_configmap)

    async def close(self) -> None:
        await self._cancel_tasks()
        for task in list(self._event_tasks):
            task.cancel()
        for runtime in self.connections.values():
            await runtime.api.close()
        self.connections.clear()

    def poke(self) -> None:
        """Something changed (a watch event, a finished task): run a cycle soon."""
        self._wake.set()

    def request_reverify(self, key: RouteKey) -> None:
        """The kopf timer: re-check this route's projects and keys against Sentry (deleted projects, rotated keys)."""
        runtime = self.runtimes.get(key)
        if runtime is not None:
            runtime.verify_due = True
            conn = self.connections.get(runtime.spec.connection)
            age = None if conn is None or conn.listed_at is None else time.monotonic() - conn.listed_at
            if conn is not None and age is not None and age >= self.settings.reverify_interval / 2:
                conn.invalidate()
        self._cluster_fallback.result = None  # re-check the cluster-wide fallback too
        self.reported.due = True
        self.poke()

    def update_reports(self, data: Mapping[str, str] | None) -> None:
        """The report ConfigMap changed (SPEC §4): new values to route or create, or projects to re-check."""
        if data is None:  # deleted: forwarders need it to report, so it comes back
            self._start("report-configmap", self._recreate_report_configmap())
            return
        reports, malformed = parse_reports(data)
        known = {r.key for r in self.reported.pending_reports}
        self.reported.pending_reports = reports
        self._malformed_reports = malformed
        present = {r.key for r in reports} | set(malformed)
        self._report_removals &= present
        fresh = [r for r in reports if r.key not in known]
        if fresh:
            self.reported.due = True
        if any(r.reason not in ("", "unrouted") for r in fresh):
            # A project answered 401/403: its key may have been rotated or the project deleted; re-check all.
            for key in self.runtimes:
                self.request_reverify(key)
        self.poke()

    async def _recreate_report_configmap(self) -> None:
        if await self.kube.create_configmap(self.settings.report_configmap, {}):
            log.info("Re-created the report ConfigMap %s", self.settings.report_configmap)

    async def run(self, indexes: Indexes, *, stopped: Any) -> None:
        """The daemon body: cycle until kopf stops the daemon (shutdown, or paused by a peer)."""
        self.indexes = indexes
        previous = await self.routes_configmap.read()
        if previous is not None:
            self._remember(previous)

        async def wake_on_stop() -> None:
            await stopped.wait()
            self.poke()

        watcher = asyncio.create_task(wake_on_stop())
        reports = ReportWatcher(self.kube.core, self.settings.report_configmap, on_change=self.update_reports)
        reports.start()
        try:
            while not stopped:
                self.cycles += 1
                self._wake.clear()
                now = time.monotonic()
                self._sync_runtimes(now)
                self._plan_and_start(now)
                self._render_held = self.ready and now < self._rendered_at + MIN_RENDER_INTERVAL
                if self.ready and not self._render_held:
                    self._rendered_at = now
                    try:
                        await self._render_and_write(now)
                    except Exception as exc:  # the API server is unreachable: keep provisioning, write later
                        log.warning("Writing the routes table failed, retrying: %s", exc)
                        self._render_held = True
                timeout = min(max(self._next_deadline(now) - time.monotonic(), 0.05), MAX_IDLE)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        finally:
            watcher.cancel()
            reports.stop()
            await self._cancel_tasks()

    @property
    def ready(self) -> bool:
        """The start-up barrier: indexes listed (we run inside the daemon) and one org listing succeeded."""
        return self.indexes is not None and any(c.listed for c in self.connections.values())

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # --- 1. routes -------------------------------------------------------------------------------------

    def _sync_runtimes(self, now: float) -> None:
        assert self.indexes is not None
        specs = {key: spec for key, store in self.indexes.routes.items() for spec in store}
        for key, spec in specs.items():
            runtime = self.runtimes.get(key)
            if runtime is None or runtime.spec.uid != spec.uid:
                self.runtimes[key] = RouteRuntime.from_spec(spec, now=now)
            else:
                runtime.spec = spec
        for key in set(self.runtimes) - set(specs):
            del self.runtimes[key]
            task = self._tasks.pop(_route_task(key), None)
            if task is not None:
                task.cancel()

    def _live_runtimes(self) -> list[RouteRuntime]:
        return sorted((r for r in self.runtimes.values() if not r.spec.deleting), key=lambda r: r.spec.order)

    def _connection(self, spec: RouteSpec) -> tuple[ConnectionRuntime | None, tuple[str, str] | None]:
        conn = self.connections.get(spec.connection)
        if conn is None:
            return None, ("ConnectionNotFound", f"the operator has no Sentry connection named {spec.connection!r}")
        if not connection_allows(conn.connection, spec.namespace):
            return None, (
                "ConnectionNotAllowed",
                f"connection {spec.connection!r} may not be used from namespace {spec.namespace!r}",
            )
        return conn, None

    # --- 2. plan and provision -------------------------------------------------------------------------

    def _parent_of(self, namespace: str, owner: OwnerRef) -> OwnerRef | None:
        assert self.indexes is not None
        index = self.indexes.replicaset_parents if owner.kind == "ReplicaSet" else self.indexes.job_parents
        return next(iter(index.get((namespace, owner.name), ())), None)

    def _plan(self, runtime: RouteRuntime, now: float) -> tuple[Item, ...]:
        """Everything this route covers right now (values in a stable order)."""
        assert self.indexes is not None
        spec = runtime.spec
        items = [Item("mapped", value, target) for value, target in sorted(spec.mapping.items())]
        auto = spec.auto
        if auto is not None:
            pods = list(self.indexes.pods.get(spec.namespace, ()))

            def parent_of(owner: OwnerRef) -> OwnerRef | None:
                return self._parent_of(spec.namespace, owner)

            selected = pod_service_names(pods, mode=auto.derive, selector=auto.pod_selector, parent_of=parent_of)
            # A value's clock starts when its last Pod is noticed gone, not at the cycle before that.
            for value in set(selected) | (runtime.present - set(selected)):
                runtime.last_seen[value] = now
            runtime.present = set(selected)
            for value, seen in list(runtime.last_seen.items()):
                if now - seen > auto.stale_after:
                    del runtime.last_seen[value]
            auto_values = sorted(v for v in runtime.last_seen if v not in spec.mapping)
            items += [
                Item("auto", v, project_slug(auto.project_template, service=v, namespace=spec.namespace))
                for v in auto_values
            ]
            # Identity routes: any name a Pod of this namespace reports (selected or not) that already is a
            # project's slug; never the whole org (SPEC §3).
            everyone = pod_service_names(pods, mode=auto.derive, selector=None, parent_of=parent_of)
            covered = set(spec.mapping) | set(auto_values)
            items += [Item("identity", v, v) for v in everyone if v not in covered and is_valid_user_slug(v)]
        if spec.fallback_project:
            items.append(Item("fallback", _FALLBACK_VALUE, spec.fallback_project))
        return tuple(items)

    def _plan_and_start(self, now: float) -> None:
        for runtime in self._live_runtimes():
            conn, problem = self._connection(runtime.spec)
            runtime.problem = problem
            runtime.desired = self._plan(runtime, now) if conn is not None else ()
            if conn is None or _route_task(runtime.spec.key) in self._tasks:
                continue
            due = runtime.retry_at is not None and now >= runtime.retry_at
            changed = runtime.desired != runtime.planned or runtime.spec.inputs() != runtime.planned_inputs
            if changed or due or runtime.verify_due:
                self._start(_route_task(runtime.spec.key), self._provision_route(runtime, conn))
        self._start_catalog_and_fallback(now)
        self._start_reported()

    def _start(self, name: str, coro: Any) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks[name] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(name) is t:
                del self._tasks[name]
            if not t.cancelled() and t.exception() is not None:
                log.error("Task %s failed", name, exc_info=t.exception())
            self.poke()

        task.add_done_callback(done)

    def _start_catalog_and_fallback(self, now: float) -> None:
        """List every connection's projects until one listing succeeds (the barrier needs one even with no
        routes), and keep the cluster-wide fallback project's endpoint fresh."""
        if not self.ready and now >= self._catalog_retry_at:
            self._catalog_retry_at = now + min(RETRY_DELAY, self.settings.reverify_interval)
            for name, conn in self.connections.items():
                if f"catalog/{name}" not in self._tasks:
                    self._start(f"catalog/{name}", _refresh(conn))
        default = self.connections.get(DEFAULT_CONNECTION)
        state = self._cluster_fallback
        wanted = self.settings.fallback_project and default is not None and "fallback" not in self._tasks
        if wanted and default is not None and state.result is None and now >= state.ready_at:
            state.ready_at = now + min(RETRY_DELAY, self.settings.reverify_interval)
            self._start("fallback", self._provision_cluster_fallback(default))

    def _start_reported(self) -> None:
        default = self.connections.get(DEFAULT_CONNECTION)
        if default is None or "reported" in self._tasks or not self.ready:
            return
        now = time.monotonic()
        if now - self._reported_checked_at >= self.settings.reverify_interval:
            self.reported.due = True  # re-check refusals (the hourly cap frees up) and unanswered values
            self._reported_checked_at = now
        values = self.reported.candidates(self._routed_values())
        if values:
            warmup = self.settings.new_project_warmup
            self._start("reported", self.reported.provision(default, values, warmup=warmup))

    def _routed_values(self) -> set[str]:
        attribute = self.settings.default_attribute
        return {r.value for r in (self.table.routes if self.table else ()) if r.attribute == attribute}

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
        state.record(result, warmup=0.0)
        state.ready_at = 0.0

    async def _provision_route(self, runtime: RouteRuntime, conn: ConnectionRuntime) -> None:
        spec = runtime.spec
        items = runtime.desired
        runtime.planned, runtime.planned_inputs = items, spec.inputs()
        verify, runtime.verify_due, runtime.retry_at = runtime.verify_due, False, None
        catalog = await conn.refresh()
        retry = False
        for item in items:
            state = runtime.values.get(item.key)
            if state is not None and state.slug != item.slug:
                state = None
            if not verify and _settled(state):
                continue
            if item.kind == "identity" and (catalog is None or item.slug not in catalog):
                runtime.values.pop(item.key, None)
                continue
            auto = spec.auto
            try:
                result = await ensure_project(
                    conn.api,
                    slug=item.slug,
                    team=auto.team if auto else None,
                    platform=auto.platform if auto else "other",
                    create=runtime.may_create(item),
                    known=catalog,
                    value=item.value,
                )
            except TransientError as exc:
                retry = True
                (state or runtime.values.setdefault(item.key, ValueState(slug=item.slug))).transient = str(exc)
                continue
            self._announce(spec, item, state, result)
            state = state or ValueState(slug=item.slug)
            state.record(result, warmup=self.settings.new_project_warmup)
            runtime.values[item.key] = state
            if item.kind in ("mapped", "auto"):
                if result.created:
                    runtime.provenance[item.slug] = True
                elif result.project_id and item.slug not in runtime.provenance:
                    runtime.provenance[item.slug] = False
            retry = retry or result.state == "Creating"
            self.poke()  # render value by value: one slow value must not hold back the others
        wanted = {item.key for item in items}
        runtime.values = {k: v for k, v in runtime.values.items() if k in wanted}
        if retry:
            runtime.retry_at = time.monotonic() + min(RETRY_DELAY, self.settings.reverify_interval)

    def _announce(self, spec: RouteSpec, item: Item, before: ValueState | None, result: Provisioned) -> None:
        """Kubernetes Events on the SentryRoute for creations, adoptions and new failures."""
        if item.kind == "identity":
            return
        ref = spec.object_ref()
        what = "fallback project" if item.kind == "fallback" else f"project for {item.value!r}"
        previous = before.result if before is not None else None
        if result.created:
            PROJECTS_CREATED.inc()
            self._event(ref, "Normal", "ProjectCreated", f"Created {what}: {result.message}")
        elif result.state == "Ready" and (before is None or before.project_id != result.project_id):
            self._event(ref, "Normal", "ProjectAdopted", f"Using existing {what}: {result.message}")
        elif result.state == "Failed" and (previous is None or previous.reason != result.reason):
            PROVISIONING_FAILURES.labels(reason=result.reason or "Failed").inc()
            self._event(ref, "Warning", "ProvisioningFailed", f"{what}: {result.message}")

    def _event(self, ref: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event in the background: a slow or failing Events API never delays provisioning."""

        async def post() -> None:
            try:
                await self.kube.post_event(ref, type_=type_, reason=reason, message=message)
            except Exception as exc:
                log.warning("Posting event %s failed: %s", reason, exc)

        task = asyncio.create_task(post())
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    # --- 3. render and write ---------------------------------------------------------------------------

    def _value_route(
        self,
        runtime: RouteRuntime,
        conn: ConnectionRuntime,
        item: Item,
        now: float,
        projects: dict[str, ProjectEndpoint],
    ) -> ValueRoute:
        state = runtime.values.get(item.key)
        if state is not None and state.slug == item.slug:
            if state.warming(now):
                return ValueRoute(item.value, pending=True)
            if state.good is not None:
                key = conn.project_key(item.slug)
                projects[key] = state.good
                return ValueRoute(item.value, project=key)
            if state.result is not None and state.result.state == "Failed":
                return ValueRoute(item.value)
        previous = self._previous.get((runtime.spec.attribute, item.value, runtime.spec.namespace))
        if previous is not None:
            projects[previous.project] = previous.endpoint
            return ValueRoute(item.value, project=previous.project)
        return ValueRoute(item.value, pending=item.kind in ("mapped", "auto"))

    def render(self, now: float) -> tuple[RoutesTable, dict[ConflictKey, str]]:
        """The table from current knowledge, plus the Conflict messages per (route, value)."""
        projects: dict[str, ProjectEndpoint] = {}
        contributions = []
        for runtime in self._live_runtimes():
            spec = runtime.spec
            conn = self.connections.get(spec.connection)
            if conn is None or runtime.problem is not None:
                continue
            parts: dict[str, list[ValueRoute]] = {"mapped": [], "auto": [], "identity": [], "fallback": []}
            for item in runtime.desired:
                parts[item.kind].append(self._value_route(runtime, conn, item, now, projects))
            contributions.append(
                RouteContribution(
                    order=spec.order,
                    namespace=spec.namespace,
                    attribute=spec.attribute,
                    mapped=tuple(parts["mapped"]),
                    provisioned=tuple(parts["auto"]),
                    identity=tuple(parts["identity"]),
                    fallback=next((r.project for r in parts["fallback"] if r.project), None),
                )
            )
        reported = self.reported.routes(self.connections.get(DEFAULT_CONNECTION), now, projects)
        auto_create = self.settings.auto_create
        table = build_routes_table(
            contributions=contributions,
            projects=projects,
            cluster_fallback=self._cluster_fallback_route(projects),
            reported_identity=[(self.settings.default_attribute, r) for r in reported],
            unrouted="hold" if auto_create else "drop",
            auto_create_attribute=self.settings.default_attribute if auto_create else None,
            refused=self.reported.refusals() if auto_create else (),
        )
        return table, find_conflicts(contributions)

    def _cluster_fallback_route(self, projects: dict[str, ProjectEndpoint]) -> ClusterFallback | None:
        conn = self.connections.get(DEFAULT_CONNECTION)
        state = self._cluster_fallback
        attribute = self.settings.default_attribute
        if not self.settings.fallback_project or conn is None:
            return None
        if state.good is not None:
            key = conn.project_key(state.slug)
            projects[key] = state.good
            return ClusterFallback(attribute=attribute, project=key)
        previous = self._previous.get((attribute, _FALLBACK_VALUE, None))
        if previous is not None and (state.result is None or state.result.state != "Failed"):
            projects[previous.project] = previous.endpoint
            return ClusterFallback(attribute=attribute, project=previous.project)
        return None

    async def _render_and_write(self, now: float) -> None:
        table, conflicts = self.render(now)
        # Now and then re-read the ConfigMap instead of trusting memory: someone may have deleted or edited it.
        verify = now - self._configmap_verified_at >= self.settings.reverify_interval
        if verify:
            self._configmap_verified_at = now
        result = await self.routes_configmap.write(table, verify=verify)
        self.size_problem = result.size.describe() if result.size.near_limit else None
        if not result.size.too_large:
            self.table = table
            self._remember(table)
        await self._write_statuses(now, conflicts)
        await self._remove_handled_reports()

    async def _remove_handled_reports(self) -> None:
        """Delete report entries we are done with, so forwarders can report new values (1000-key cap)."""
        keys = set(self.reported.handled_keys(self._routed_values())) | set(self._malformed_reports)
        keys -= self._report_removals
        if not keys:
            return
        try:
            await self.kube.patch_configmap_data(self.settings.report_configmap, dict.fromkeys(sorted(keys)))
        except Exception as exc:
            log.warning("Removing handled entries from the report ConfigMap failed: %s", exc)
            return
        self._report_removals |= keys

    def _remember(self, table: RoutesTable) -> None:
        """The last table written: the "previous entry" a value without a fresh answer keeps."""
        self._previous = {
            (r.attribute, r.value, r.namespace): _Previous(r.project, table.projects[r.project]) for r in table.routes
        }
        for f in table.fallbacks:
            self._previous[(f.attribute, _FALLBACK_VALUE, f.namespace)] = _Previous(
                f.project, table.projects[f.project]
            )

    # --- status ----------------------------------------------------------------------------------------

    def _route_problem(self, runtime: RouteRuntime) -> tuple[str, str] | None:
        if runtime.problem is not None:
            return runtime.problem
        conn = self.connections.get(runtime.spec.connection)
        if conn is not None and conn.auth_problem is not None:
            exc = conn.auth_problem
            return ("Unauthorized" if exc.status in (None, 401) else "Forbidden", str(exc))
        if runtime.spec.problem is not None:
            return ("InvalidSpec", runtime.spec.problem)
        fallback = runtime.values.get(("fallback", _FALLBACK_VALUE))
        if fallback is not None and fallback.result is not None and fallback.result.state == "Failed":
            return ("FallbackProjectUnavailable", fallback.result.message)
        return None

    async def _write_statuses(self, now: float, conflicts: dict[ConflictKey, str]) -> None:
        for runtime in self._live_runtimes():
            spec = runtime.spec
            entries = [
                runtime.project_status(item, now=now, conflict=conflicts.get((spec.namespace, spec.name, item.value)))
                for item in runtime.desired
                if item.kind in ("mapped", "auto")
            ]
            condition = ready_condition(entries, route_problem=self._route_problem(runtime))
            body = status_body(
                generation=spec.generation,
                entries=entries,
                condition=condition,
                previous_conditions=spec.status_conditions,
                table_size_problem=self.size_problem,
            )
            last = runtime.last_status if runtime.last_status is not None else spec.current_status
            if same_status(last, body):
                continue
            try:
                await self.kube.patch_route_status(spec.namespace, spec.name, body)
            except Exception as exc:  # the next cycle retries; never let one route's status stop the loop
                log.warning("Writing the status of SentryRoute %s/%s failed: %s", spec.namespace, spec.name, exc)
                continue
            runtime.last_status = body

    # --- deletion --------------------------------------------------------------------------------------

    async def delete_created_projects(self, spec: RouteSpec) -> None:
        """`deletionPolicy: Delete`: delete the projects this route created (never adopted ones)."""
        runtime = self.runtimes.get(spec.key) or RouteRuntime.from_spec(spec, now=time.monotonic())
        conn, problem = self._connection(spec)
        if conn is None:
            log.warning("Not deleting projects of SentryRoute %s/%s: %s", spec.namespace, spec.name, problem)
            return
        for slug_ in runtime.created_slugs():
            try:
                await conn.api.delete_project(slug_)
            except TransientError as exc:
                raise kopf.TemporaryError(f"deleting project {slug_}: {exc}", delay=RETRY_DELAY) from None
            except Exception as exc:
                self._event(spec.object_ref(), "Warning", "DeleteFailed", f"project {slug_}: {exc}")
                continue
            self._event(spec.object_ref(), "Normal", "ProjectDeleted", f"Deleted project {slug_}")
        conn.invalidate()

    # --- timing ----------------------------------------------------------------------------------------

    def _next_deadline(self, now: float) -> float:
        deadlines = [now + MAX_IDLE]
        if self._render_held:
            deadlines.append(self._rendered_at + MIN_RENDER_INTERVAL)
        for runtime in self.runtimes.values():
            if runtime.retry_at is not None and _route_task(runtime.spec.key) not in self._tasks:
                deadlines.append(runtime.retry_at)
            deadlines += [s.ready_at for s in runtime.values.values() if s.ready_at > now]
            if runtime.spec.auto is not None:
                deadlines += [seen + runtime.spec.auto.stale_after for seen in runtime.last_seen.values()]
        deadlines += [s.ready_at for s in self.reported.states.values() if s.ready_at > now]
        if self.reported.pending_reports or self.reported.refused:
            deadlines.append(self._reported_checked_at + self.settings.reverify_interval)
        if not self.ready:
            deadlines.append(self._catalog_retry_at)
        if self.settings.fallback_project and self._cluster_fallback.result is None and "fallback" not in self._tasks:
            deadlines.append(self._cluster_fallback.ready_at)
        return min(deadlines)


def _settled(state: ValueState | None) -> bool:
    """Answered, without a pending retry: nothing new to learn until the next re-verification."""
    return (
        state is not None and state.result is not None and state.transient is None and state.result.state != "Creating"
    )


async def _refresh(conn: ConnectionRuntime) -> None:
    await conn.refresh()


def _route_task(key: RouteKey) -> str:
    return f"route/{key[0]}/{key[1]}"


def _shared_org_slugs(connections: Iterable[Connection]) -> set[str]:
    seen: dict[str, int] = {}
    for conn in connections:
        seen[conn.org_slug] = seen.get(conn.org_slug, 0) + 1
    return {org for org, count in seen.items() if count > 1}

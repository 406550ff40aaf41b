"""The queue between routing and export: what the receivers hand data to (the `Pipeline` of model.py).

Every accepted part lands in a queue keyed by signal and either its project (`org/slug`) or, while it has
no project, its held value (`pending` / `unrouted` hold). Project queues are exported by `Exporter`
workers; `Bounds` keeps memory bounded; a new routes table re-resolves everything queued (keys, URLs,
held values, projects that left the table) without losing it. Holding is a queue state, not a special
case: a project queue is active, rate limited, backing off or held (Sentry refused its key or id); a
held-value queue waits for a table that routes its value.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from sentryroute.routes import RoutesTable
from sentryroute_forwarder.export.client import ExportClient
from sentryroute_forwarder.export.sender import Sender
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Overloaded, RoutedPart, Signal, Unavailable
from sentryroute_forwarder.queue.accounting import QueueAccounting
from sentryroute_forwarder.queue.bounds import Bounds
from sentryroute_forwarder.queue.diskstore import DiskStore, QueueWriteError
from sentryroute_forwarder.queue.exporter import Exporter
from sentryroute_forwarder.queue.pacing import Pacer, after_commit
from sentryroute_forwarder.queue.settings import PipelineSettings
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import MemoryStore, QueueKey, QueueStore, Record
from sentryroute_forwarder.route.origin import ATTRIBUTE, Origin
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.split import split_request
from sentryroute_forwarder.route.wire import MalformedPayload

__all__ = ["PipelineStats", "QueuePipeline"]

log = logging.getLogger(__name__)

#: How often stuck queues are trimmed to their age and byte bounds, at most (seconds).
_SWEEP_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class PipelineStats:
    items: int
    bytes: int
    queues: dict[QueueKey, int]  # items per non-empty queue
    states: dict[str, str]  # project → active | rate_limited | backing_off | held:<reason>
    in_flight: int  # export requests being sent


class QueuePipeline:
    """Owns accepted data until it is delivered, dropped (counted, with a reason) or left over at shutdown."""

    def __init__(
        self,
        settings: PipelineSettings,
        metrics: ForwarderMetrics,
        *,
        store: QueueStore | None = None,
        strict_namespaces: bool = False,
    ) -> None:
        """`strict_namespaces`: `--namespace-from peer` — stored data is re-routed by the namespace it was
        routed by when accepted, never by what its resources claim (SPEC §6.1)."""
        self._strict = strict_namespaces
        self._settings = settings
        self._store: QueueStore = store if store is not None else _make_store(settings, metrics)
        self._metrics = metrics
        self._states = QueueStates()
        metrics.rate_limit_deadlines.limits = self._states.limits.active
        self._accounting = QueueAccounting(metrics, self._store, self._states)
        self._pacer = Pacer(settings, store=self._store, states=self._states, metrics=metrics)
        self._bounds = Bounds(
            settings, store=self._store, states=self._states, accounting=self._accounting, pacer=self._pacer
        )
        self._client = ExportClient(settings)
        self._seq = itertools.count(1)  # renumbered above what the store holds by start()
        self._exporter = Exporter(
            settings,
            settings,
            store=self._store,
            states=self._states,
            bounds=self._bounds,
            accounting=self._accounting,
            metrics=metrics,
            sender=Sender(self._client, default_rate_limit=settings.default_rate_limit),
            next_seq=lambda: next(self._seq),
            reroute=self._reroute,
        )
        self._router: Router | None = None
        self._reroute_later: set[QueueKey] = set()  # re-routing failed to write (a full disk): retried
        self._closing = False
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_interval = min(_SWEEP_INTERVAL, max(0.05, settings.max_hold / 10))

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (replaying a queue directory), then start exporting what it holds."""
        self._store.open()
        self._check_volume()
        self._seq = itertools.count(self._store.last_seq() + 1)
        if self._store.items():
            self._metrics.queue_replayed_items.inc(self._store.items())
        self._accounting.refresh_all()
        await self._client.start()
        self._exporter.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="sentryroute-queue-sweeper")

    async def close(self, timeout: float) -> int:  # noqa: ASYNC109 - a bound on flushing, not a cancel scope
        """Stop taking data, deliver what can be delivered within `timeout`; returns the items left undelivered.

        Rate limits and holds are respected: what cannot be sent before the bound is not waited for.
        """
        self._closing = True
        self._pacer.release_all()
        await self._exporter.drain(time.monotonic() + timeout)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self._client.close()
        per_owner: Counter[str] = Counter()
        durable = isinstance(self._store, DiskStore)
        for key in self._store.queues():
            items = self._store.items(key)
            per_owner[key.owner()] += items
            if durable:
                continue
            # Counted from the store's totals and let go by seq: a batch held as its gzip body is never inflated
            # just to be counted (a queue holds one signal).
            self._accounting.dropped(key.signal, "shutdown", items)
            self._store.ack(key, [record.seq for record in self._store.records(key, payloads=False)])
        fate = "stay in the queue directory (sent after the next start)" if durable else "were not delivered"
        for owner, items in sorted(per_owner.items()):
            log.warning("shutdown: %d items for %s %s", items, owner, fate)
        self._store.close()
        self._accounting.refresh_all()
        return sum(per_owner.values())

    def _check_volume(self) -> None:
        directory, bound = self._settings.queue_dir, self._settings.max_disk_bytes
        if directory is not None and (size := shutil.disk_usage(directory).total) < bound:
            log.warning(
                "the volume of --queue-dir %s holds %d bytes, less than --max-disk-bytes (%d): when it fills up, "
                "clients get 503 (disk full) instead of 429",
                directory,
                size,
                bound,
            )

    # -- Pipeline protocol -------------------------------------------------------------------------------

    def has_room(self, nbytes: int) -> bool:
        return not self._closing and self._bounds.has_room(nbytes)

    def retry_after(self, nbytes: int) -> float | None:
        return self._bounds.retry_after(nbytes)

    def offer(self, parts: Sequence[RoutedPart], *, hold_limit: float | None = None) -> Awaitable[None] | None:
        now = time.monotonic()
        if self._closing:
            raise Unavailable("the forwarder is shutting down")
        queued = [(QueueKey.for_part(part), part) for part in parts if part.destination.kind != "drop"]
        wait = self._bounds.stuck_room(((key, len(part.payload)) for key, part in queued), now)
        if wait is not None:
            raise Overloaded(
                "queues that cannot be delivered now (rate limited, failing or held) are full",
                retry_after=None if wait == float("inf") else max(0.0, wait),
            )
        for part in parts:
            if part.destination.kind == "drop":
                self._accounting.dropped(part.signal, part.destination.reason or "unrouted", part.items)
        records = [(key, Record.from_part(part, seq=next(self._seq), accepted_at=now)) for key, part in queued]
        try:
            self._store.append_all(records)
        except QueueWriteError as exc:
            raise Unavailable(str(exc)) from None
        keys = dict.fromkeys(key for key, _ in queued)
        for key in keys:
            self._exporter.wake(key, new_data=True)
            self._accounting.refresh(key)
        commit = self._store.committed()
        paced = self._pacer.hold(keys, limit=hold_limit)
        if paced is None:
            return commit
        return paced if commit is None else after_commit(commit, paced)

    def release_answers(self) -> None:
        """Shutdown begins: answer every request held by pacing now."""
        self._pacer.release_all()

    def apply_table(self, table: RoutesTable) -> None:
        """Re-resolve queued data: release held projects whose id, key or URLs changed, re-route what moved."""
        previous, self._exporter.table = self._exporter.table, table
        self._router = Router(table, strict=self._strict)
        for project, endpoint in (previous.projects if previous is not None else {}).items():
            new = table.projects.get(project)
            if new is not None and new != endpoint:
                self._states.endpoint_changed(project, old=endpoint, new=new)
        holds = self._states.holds
        for project, hold in list(holds.items()):
            if table.projects.get(project) != hold.endpoint:
                del holds[project]
                log.info("project %r: hold (%s) released by routes revision %s", project, hold.reason, table.revision)
        for key in self._store.queues():
            if key.hold is not None:
                self._reroute(key)  # held values: delivered if the table routes them now
            elif (key.project not in table.projects or key.project in holds) and not self._states.in_flight(key):
                # An orphan queue, or a refused project whose values may route elsewhere now; a lane that
                # is sending re-routes itself afterwards.
                self._reroute(key)
        for key in self._store.queues():
            self._exporter.wake(key)
        self._accounting.refresh_all()
        self._prune_projects()

    def _prune_projects(self) -> None:
        """Forget projects that left the table once their queues are empty: their lanes, rate limits and metric
        series (`queued_items{project}` and the like). Data still queued for one keeps it until it is gone."""
        table = self._exporter.table
        if table is None:
            return
        known = self._accounting.projects | {key.project for key in self._states.lanes if key.project is not None}
        for project in known - table.projects.keys():
            if any(self._store.items(QueueKey.for_project(signal, project)) for signal in Signal):
                continue
            if self._states.forget_project(project):
                self._accounting.forget_project(project)

    # -- for the operator report (SPEC §4) and tests ----------------------------------------------------

    def held_values(self) -> list[tuple[str, str, str]]:
        """(attribute, value, reason) of held data: held values (`pending`, `unrouted`) and the values queued
        for projects Sentry refused (`project_id`, `unauthorized`, `forbidden`)."""
        return sorted({(attribute, value, reason) for attribute, value, reason, _ in self.held_entries()})

    def held_entries(self) -> list[tuple[str, str, str, str | None]]:
        """`held_values` with the namespace each was routed by (None: none or unknown), for the report."""
        found: set[tuple[str, str, str, str | None]] = set()
        for key in self._store.queues():
            if key.hold is not None:
                if key.attribute is not None and key.value is not None:
                    found.add((key.attribute, key.value, key.hold, key.namespace))
            elif (hold := self._states.holds.get(key.project or "")) is not None:
                for record in self._store.records(key, payloads=False):
                    if record.attribute is not None and record.value is not None:
                        found.add((record.attribute, record.value, hold.reason, record.namespace))
        return sorted(found, key=lambda entry: (*entry[:3], entry[3] or ""))

    def stats(self) -> PipelineStats:
        now = time.monotonic()
        lanes = self._states.lanes
        projects = {key.project for key in [*self._store.queues(), *lanes] if key.project is not None}
        return PipelineStats(
            items=self._store.items(),
            bytes=self._store.bytes(),
            queues={key: self._store.items(key) for key in self._store.queues()},
            states={project: self._states.project_state(project, now) for project in sorted(projects)},
            in_flight=sum(lane.in_flight for lane in lanes.values()),
        )

    # -- internals ---------------------------------------------------------------------------------------

    def _reroute(self, key: QueueKey) -> None:
        """Split a queue's records again with the current router (the table changed under them).

        The new records are stored before the old ones are removed: a crash in between duplicates, never loses.
        """
        router = self._router
        if router is None:
            return
        touched = {key}
        originals = list(self._store.records(key))
        moved: list[tuple[QueueKey, Record]] = []
        dropped: Counter[tuple[Signal, str]] = Counter()
        for record in originals:
            try:
                result = split_request(record.signal, record.payload, router, self._stored_origin(record))
            except MalformedPayload:  # cannot happen for data that was split once; never lose the count
                dropped[record.signal, "malformed"] += record.items
                continue
            for reason, items in result.dropped.items():
                dropped[record.signal, reason] += items
            for part in result.parts:
                target = QueueKey.for_part(part)
                # Age bounds count from acceptance, not from re-routing.
                moved.append((target, Record.from_part(part, seq=next(self._seq), accepted_at=record.accepted_at)))
                touched.add(target)
        try:
            self._store.append_all(moved)
        except QueueWriteError as exc:
            log.warning("%s: not re-routed now (%s); tried again with the next table or sweep", key.describe(), exc)
            self._reroute_later.add(key)
            return
        self._reroute_later.discard(key)
        self._store.ack(key, [record.seq for record in originals])
        for (signal, reason), items in dropped.items():
            self._accounting.dropped(signal, reason, items)
        now = time.monotonic()
        for target in touched:
            self._bounds.trim(target, now)
            self._exporter.wake(target)
            self._accounting.refresh(target)

    def _stored_origin(self, record: Record) -> Origin:
        """Whose namespace stored data is re-routed by: in peer mode the one it was accepted with (its
        resources' claims were already corrected to match it), else each resource's own claim."""
        if not self._strict:
            return ATTRIBUTE
        return Origin(record.namespace)

    async def _sweep(self) -> None:
        """Age out stuck data even when no new data arrives; revive failed workers; refresh the held gauge."""
        while True:
            await asyncio.sleep(self._sweep_interval)
            now = time.monotonic()
            self._bounds.sample_rate(now)
            self._pacer.progress()  # queues that became stuck release their held answers
            for key in self._store.queues():
                self._bounds.trim(key, now)
                self._exporter.revive(key)
            self._store.maintain()
            for key in list(self._reroute_later):
                self._reroute(key)
            self._accounting.refresh_all()
            self._prune_projects()


def _make_store(settings: PipelineSettings, metrics: ForwarderMetrics) -> QueueStore:
    """In memory, or the durable log in `--queue-dir` (payloads beyond `--max-bytes` stay on disk only)."""
    if settings.queue_dir is None:
        return MemoryStore()
    return DiskStore(
        settings.queue_dir,
        memory_bytes=settings.max_bytes,
        segment_bytes=max(64 * 1024, min(64 * 1024 * 1024, settings.max_disk_bytes // 16)),
        fsync=settings.queue_fsync,
        metrics=metrics,
    )

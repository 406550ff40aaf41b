"""The queue between routing and export: per-project queues, held values, bounds, batching and shutdown.

Every accepted part lands in a queue keyed by signal and either its project (`org/slug`) or, when it has no
project yet, its held value (`pending` / `unrouted` hold). Each project queue (a *lane*) has one worker that
batches across requests and exports on its own, so one project's outage never slows another. A project is
resolved to its URL and key only when a batch is sent, so a reload or key rotation applies to queued data.

Bounds: the receivers ask `has_room()` (the global `max_bytes`), and a queue that cannot flow — rate
limited, failing, held — keeps at most its byte share and `max_hold` seconds of data; its oldest data is
dropped and counted. The share of each stuck queue is `max_bytes / (non-empty queues + 1)`, so stuck queues
together never fill the global bound and healthy projects keep getting data in.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sentryroute.routes import ProjectEndpoint, RoutesTable
from sentryroute_forwarder.export.client import ExportClient, SessionFactory
from sentryroute_forwarder.export.ratelimit import RateLimits
from sentryroute_forwarder.export.sender import Outcome, Sender, Verdict
from sentryroute_forwarder.export.settings import ExportSettings, ExportSettingsSource
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import RoutedPart, Signal
from sentryroute_forwarder.queue.lane import Lane, ProjectHold, backoff_delay
from sentryroute_forwarder.queue.notices import DropNotices
from sentryroute_forwarder.queue.settings import QueueSettings, QueueSettingsSource
from sentryroute_forwarder.queue.store import MemoryStore, QueueKey, QueueStore, Record
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.split import split_request
from sentryroute_forwarder.route.wire import MalformedPayload, parse_records

__all__ = ["PipelineSettingsSource", "PipelineStats", "QueuePipeline"]

log = logging.getLogger(__name__)

#: How often stuck queues are trimmed to their age and byte bounds, at most (seconds).
_SWEEP_INTERVAL = 1.0


class PipelineSettingsSource(QueueSettingsSource, ExportSettingsSource, Protocol):
    """The forwarder settings the pipeline reads (`ForwarderSettings` has them all)."""


@dataclass(frozen=True, slots=True)
class PipelineStats:
    items: int
    bytes: int
    queues: dict[QueueKey, int]  # items per non-empty queue
    states: dict[str, str]  # project → active | rate_limited | backing_off | held:<reason>
    in_flight: int  # export requests being sent


class QueuePipeline:
    """The forwarder's `Pipeline` (model.py): owns accepted data until delivered, dropped (counted) or shut down."""

    def __init__(
        self,
        settings: PipelineSettingsSource,
        metrics: ForwarderMetrics,
        *,
        session_factory: SessionFactory | None = None,
        store: QueueStore | None = None,
    ) -> None:
        self._settings = QueueSettings.from_settings(settings)
        self._export = ExportSettings.from_settings(settings)
        self._metrics = metrics
        self._store: QueueStore = store if store is not None else MemoryStore()
        self._client = ExportClient(self._export, session_factory=session_factory)
        self._sender = Sender(self._client, default_rate_limit=self._export.default_rate_limit)
        self._limits = RateLimits()
        self._table: RoutesTable | None = None
        self._router: Router | None = None
        self._lanes: dict[QueueKey, Lane] = {}
        self._holds: dict[str, ProjectHold] = {}
        self._seq = itertools.count(1)
        self._started = False
        self._closing = False
        self._close_deadline = math.inf
        self._sweeper: asyncio.Task[None] | None = None
        self._drop_notices = DropNotices()
        self._held_reasons_seen: set[str] = set()  # so that a gauge goes back to 0 when its data leaves
        self._sweep_interval = min(_SWEEP_INTERVAL, max(0.05, self._settings.max_hold / 10))

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._client.start()
        self._started = True
        self._sweeper = asyncio.create_task(self._sweep(), name="sentryroute-queue-sweeper")
        for key in self._store.queues():
            self._wake(key)

    async def close(self, timeout: float) -> int:  # noqa: ASYNC109 - a bound on flushing, not a cancel scope
        """Stop taking data, deliver what can be delivered within `timeout`; returns the items left undelivered."""
        self._closing = True
        self._close_deadline = time.monotonic() + timeout
        for key in self._store.queues():
            self._wake(key)
        # Collected again on every round: a table applied meanwhile may have started a worker.
        while workers := [lane.task for lane in self._lanes.values() if lane.task is not None and lane.running]:
            remaining = self._close_deadline - time.monotonic()
            if remaining <= 0:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                break
            await asyncio.wait(workers, timeout=remaining)
        self._started = False  # nothing starts exporting any more
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self._client.close()
        return self._discard_undelivered()

    def _discard_undelivered(self) -> int:
        per_owner: Counter[str] = Counter()
        for key in self._store.queues():
            for record in self._store.take_all(key):
                self._count_drop(record.signal, "shutdown", record.items)
                per_owner[_owner(key)] += record.items
        for owner, items in sorted(per_owner.items()):
            log.warning("shutdown: %d items for %s were not delivered", items, owner)
        self._refresh_gauges()
        return sum(per_owner.values())

    # -- Pipeline protocol -------------------------------------------------------------------------------

    def has_room(self, nbytes: int) -> bool:
        return not self._closing and self._store.bytes() + nbytes <= self._settings.max_bytes

    def offer(self, parts: Sequence[RoutedPart]) -> None:
        now = time.monotonic()
        for part in parts:
            if self._closing:
                self._count_drop(part.signal, "shutdown", part.items)
                continue
            destination = part.destination
            if destination.kind == "drop":
                self._count_drop(part.signal, destination.reason or "unrouted", part.items)
                continue
            if destination.kind == "project" and destination.project is not None:
                key = QueueKey.for_project(part.signal, destination.project)
            else:
                key = QueueKey.for_hold(part.signal, destination.reason or "unrouted", part.attribute, part.value)
            record = Record(
                seq=next(self._seq),
                signal=part.signal,
                payload=part.payload,
                items=part.items,
                resources=part.resources,
                attribute=part.attribute,
                value=part.value,
                accepted_at=now,
            )
            self._enqueue(key, record)

    def apply_table(self, table: RoutesTable) -> None:
        """Re-resolve queued data: release held projects whose id, key or URLs changed, re-route what moved."""
        self._table = table
        self._router = Router(table)
        for project, hold in list(self._holds.items()):
            endpoint = table.projects.get(project)
            if endpoint is None or endpoint != hold.endpoint:
                del self._holds[project]
                log.info("project %r: hold (%s) released by routes revision %s", project, hold.reason, table.revision)
        for key in self._store.queues():
            if key.hold is not None:
                self._reroute(key)  # held values: delivered if the table routes them now
            elif key.project not in table.projects or key.project in self._holds:
                # An orphan queue, or a refused project whose values may route elsewhere now.
                lane = self._lanes.get(key)
                if lane is None or not lane.in_flight:
                    self._reroute(key)
        for key in self._store.queues():
            self._wake(key)
        self._refresh_gauges()

    # -- for the operator report (SPEC §4) and tests ----------------------------------------------------

    def held_values(self) -> list[tuple[str, str, str]]:
        """(attribute, value, reason) of data held: held values, and the values queued for refused projects."""
        found: set[tuple[str, str, str]] = set()
        for key in self._store.queues():
            if key.hold is not None:
                if key.attribute is not None and key.value is not None:
                    found.add((key.attribute, key.value, key.hold))
            elif key.project in self._holds:
                reason = self._holds[key.project].reason
                for record in self._store.records(key):
                    if record.attribute is not None and record.value is not None:
                        found.add((record.attribute, record.value, reason))
        return sorted(found)

    def stats(self) -> PipelineStats:
        now = time.monotonic()
        projects = {key.project for key in self._store.queues() if key.project is not None}
        projects |= {key.project for key in self._lanes if key.project is not None}
        return PipelineStats(
            items=self._store.items(),
            bytes=self._store.bytes(),
            queues={key: self._store.items(key) for key in self._store.queues()},
            states={project: self._project_state(project, now) for project in sorted(projects)},
            in_flight=sum(lane.in_flight for lane in self._lanes.values()),
        )

    def _project_state(self, project: str, now: float) -> str:
        hold = self._holds.get(project)
        if hold is not None:
            return f"held:{hold.reason}"
        lanes = [self._lanes.get(QueueKey.for_project(signal, project)) for signal in Signal]
        if any(self._limits.until(project, signal, now=now) > now for signal in Signal):
            return "rate_limited"
        if any(lane is not None and lane.failures > 0 for lane in lanes):
            return "backing_off"
        return "active"

    # -- queueing, re-routing and bounds ----------------------------------------------------------------

    def _enqueue(self, key: QueueKey, record: Record) -> None:
        self._store.append(key, record)
        self._trim(key, time.monotonic())
        self._wake(key)
        self._refresh_queue_gauges(key)

    def _reroute(self, key: QueueKey) -> None:
        """Split a queue's records again with the current router (the table changed under them)."""
        router = self._router
        if router is None:
            return
        touched = {key}
        for record in self._store.take_all(key):
            try:
                result = split_request(record.signal, record.payload, router)
            except MalformedPayload:  # cannot happen for data that was split once; never lose the count
                self._count_drop(record.signal, "malformed", record.items)
                continue
            for reason, items in result.dropped.items():
                self._count_drop(record.signal, reason, items)
            for part in result.parts:
                destination = part.destination
                if destination.kind == "project" and destination.project is not None:
                    target = QueueKey.for_project(part.signal, destination.project)
                else:
                    target = QueueKey.for_hold(
                        part.signal, destination.reason or "unrouted", part.attribute, part.value
                    )
                moved = Record(
                    seq=next(self._seq),
                    signal=part.signal,
                    payload=part.payload,
                    items=part.items,
                    resources=part.resources,
                    attribute=part.attribute,
                    value=part.value,
                    accepted_at=record.accepted_at,  # age bounds count from acceptance, not from re-routing
                )
                self._store.append(target, moved)
                touched.add(target)
        now = time.monotonic()
        for target in touched:
            self._trim(target, now)
            self._wake(target)
            self._refresh_queue_gauges(target)

    def _stuck_reason(self, key: QueueKey, now: float) -> str | None:
        """Why a queue cannot flow (its drop reason), or None while it can."""
        if key.hold is not None:
            return key.hold
        project = key.project or ""
        if project in self._holds:
            return "held"
        if self._limits.until(project, key.signal, now=now) > now:
            return "rate_limited"
        lane = self._lanes.get(key)
        if lane is not None and lane.failures > 0:
            return "upstream_failing"
        return None

    def _share(self) -> int:
        return self._settings.max_bytes // (len(self._store.queues()) + 1)

    def _trim(self, key: QueueKey, now: float) -> None:
        """Drop the oldest data of a stuck queue past its byte share or `max_hold` age."""
        reason = self._stuck_reason(key, now)
        lane = self._lanes.get(key)
        if reason is None or (lane is not None and lane.in_flight):
            return
        share, oldest_kept = self._share(), now - self._settings.max_hold
        dropped = 0
        while (oldest := self._store.oldest(key)) is not None and (
            oldest.accepted_at < oldest_kept or self._store.bytes(key) > share
        ):
            self._store.drop_oldest(key)
            self._count_drop(oldest.signal, reason, oldest.items)
            dropped += oldest.items
        if dropped:
            report = self._drop_notices.add(key, dropped, now=now)
            if report:
                log.warning(
                    "%s is %s: dropped its %d oldest items (bounds: %d bytes, %.0f s)",
                    _describe(key),
                    reason.replace("_", " "),
                    report,
                    share,
                    self._settings.max_hold,
                )
            self._refresh_queue_gauges(key)

    async def _sweep(self) -> None:
        """Age out stuck data even when no new data arrives; refresh the held-items gauge."""
        while True:
            await asyncio.sleep(self._sweep_interval)
            now = time.monotonic()
            for key in self._store.queues():
                self._trim(key, now)
                lane = self._lanes.get(key)
                if key.project is not None and not self._closing and (lane is None or not lane.running):
                    self._wake(key)  # restarts a worker that failed
            self._refresh_gauges()

    # -- export workers ---------------------------------------------------------------------------------

    def _wake(self, key: QueueKey) -> None:
        if key.project is None or not self._started:
            return
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(key)
        if not lane.running and self._store.items(key):
            lane.task = asyncio.create_task(self._run_lane(lane), name=f"sentryroute-export {_describe(key)}")
        lane.wake.set()

    async def _run_lane(self, lane: Lane) -> None:
        try:
            await self._export_loop(lane)
        except Exception:
            # The data stays queued; the sweeper restarts the worker within a second.
            log.exception("%s: export worker failed", _describe(lane.key))
        finally:
            lane.task = None

    async def _export_loop(self, lane: Lane) -> None:
        key = lane.key
        project = key.project or ""
        while True:
            lane.wake.clear()
            if not self._store.items(key):
                return
            table = self._table
            endpoint = table.projects.get(project) if table is not None else None
            if table is not None and endpoint is None:
                self._reroute(key)  # the project left the table while a batch was in flight
                return
            now = time.monotonic()
            blocked_until = self._blocked_until(key, now)
            if self._closing and blocked_until > self._close_deadline:
                return  # cannot be delivered within the shutdown bound
            if blocked_until > now:
                await lane.sleep(None if math.isinf(blocked_until) else blocked_until - now)
                continue
            assert endpoint is not None  # not blocked, so a table is loaded
            batch = self._store.peek(
                key,
                max_items=self._settings.batch_max_items,
                max_bytes=min(self._settings.batch_max_bytes, lane.byte_cap or self._settings.batch_max_bytes),
            )
            if not self._closing and not self._batch_full(key, batch):
                ready_at = batch[0].accepted_at + self._settings.batch_timeout
                if ready_at > now:
                    await lane.sleep(ready_at - now)
                    continue
            await self._export_batch(lane, endpoint, batch)

    def _blocked_until(self, key: QueueKey, now: float) -> float:
        project = key.project or ""
        if self._table is None or project in self._holds:
            return math.inf
        lane = self._lanes[key]
        return max(self._limits.until(project, key.signal, now=now), lane.backoff_until)

    def _batch_full(self, key: QueueKey, batch: list[Record]) -> bool:
        items = sum(r.items for r in batch)
        nbytes = sum(len(r.payload) for r in batch)
        return (
            items >= self._settings.batch_max_items
            or nbytes >= self._settings.batch_max_bytes
            or items < self._store.items(key)  # the bounds cut the batch short: more is waiting
        )

    async def _export_batch(self, lane: Lane, endpoint: ProjectEndpoint, batch: list[Record]) -> None:
        key = lane.key
        project = key.project or ""
        url = endpoint.tracesUrl if key.signal is Signal.TRACES else endpoint.logsUrl
        body = b"".join(record.payload for record in batch)
        started = time.monotonic()
        lane.in_flight = True
        try:
            outcome = await self._sender.send(url=url, public_key=endpoint.publicKey, body=body, signal=key.signal)
        finally:
            lane.in_flight = False
        now = time.monotonic()
        self._metrics.export_duration.observe(now - started)
        self._metrics.export_requests.labels(project, outcome.verdict.value).inc()
        for signal, seconds in self._limits.impose(project, outcome.limits, now=now).items():
            self._metrics.rate_limited_seconds.labels(project, signal.value).inc(seconds)
        self._settle(lane, endpoint, batch, outcome, now)
        self._trim(key, now)
        self._refresh_queue_gauges(key)

    def _settle(self, lane: Lane, endpoint: ProjectEndpoint, batch: list[Record], outcome: Outcome, now: float) -> None:
        """Act on an answer: acknowledge, keep (waiting on a limit or a back-off), split, hold or drop."""
        key = lane.key
        project = key.project or ""
        verdict = outcome.verdict
        if verdict is not Verdict.RETRY and lane.failures:
            log.info("%s: Sentry answers again (%s) after %d failures", _describe(key), outcome.status, lane.failures)
            lane.failures, lane.backoff_until = 0, 0.0
        if verdict is Verdict.DELIVERED:
            self._store.ack(key, [r.seq for r in batch])
            lane.relax_byte_cap(self._settings.batch_max_bytes)
            self._metrics.exported_items.labels(key.signal.value, project).inc(sum(r.items for r in batch))
        elif verdict is Verdict.RATE_LIMITED:
            until = self._limits.until(project, key.signal, now=now)
            log.info("%s: rate limited by Sentry for %.0f s", _describe(key), max(0.0, until - now))
        elif verdict is Verdict.RETRY:
            lane.failures += 1
            delay = backoff_delay(lane.failures, initial=self._export.retry_initial, maximum=self._export.retry_max)
            lane.backoff_until = now + delay
            log.warning(
                "%s: export failed (%s: %s), retry %d in %.2f s",
                _describe(key),
                outcome.status or "no answer",
                outcome.detail,
                lane.failures,
                delay,
            )
        elif verdict is Verdict.TOO_LARGE:
            self._split_too_large(lane, batch)
        elif verdict is Verdict.HOLD:
            if self._table is not None and self._table.projects.get(project) != endpoint:
                return  # a new table changed the project while this was in flight: retry with it
            self._holds[project] = ProjectHold(outcome.hold_reason or "forbidden", endpoint)
            log.warning(
                "project %r: Sentry refused its key or id (%s: %s); holding its data until the routes table changes it",
                project,
                outcome.status,
                outcome.detail,
            )
            for signal in Signal:
                self._trim(QueueKey.for_project(signal, project), now)
            self._refresh_gauges()
        else:
            self._store.ack(key, [r.seq for r in batch])
            self._count_drop(key.signal, f"rejected_{outcome.status}", sum(r.items for r in batch))
            log.warning("%s: Sentry rejected a batch (%s: %s); dropped", _describe(key), outcome.status, outcome.detail)

    def _split_too_large(self, lane: Lane, batch: list[Record]) -> None:
        """413: halve the batch by records, then a record by resources; a single resource too large is dropped."""
        key = lane.key
        nbytes = sum(len(r.payload) for r in batch)
        if len(batch) > 1:
            lane.byte_cap = max(1, nbytes // 2)
            return
        record = batch[0]
        if record.resources <= 1:
            self._store.ack(key, [record.seq])
            self._count_drop(key.signal, "too_large", record.items)
            log.warning("%s: one resource of %d bytes is too large for Sentry; dropped", _describe(key), nbytes)
            return
        resources = parse_records(record.payload)
        half = len(resources) // 2
        halves = [resources[:half], resources[half:]]
        self._store.replace(
            key,
            record.seq,
            [
                Record(
                    seq=next(self._seq),
                    signal=record.signal,
                    payload=b"".join(r.data for r in part),
                    items=sum(r.items for r in part),
                    resources=len(part),
                    attribute=record.attribute,
                    value=record.value,
                    accepted_at=record.accepted_at,
                )
                for part in halves
            ],
        )
        lane.byte_cap = max(1, nbytes // 2)

    # -- metrics --------------------------------------------------------------------------------------------

    def _count_drop(self, signal: Signal, reason: str, items: int) -> None:
        if items:
            self._metrics.dropped_items.labels(signal.value, reason).inc(items)

    def _refresh_queue_gauges(self, key: QueueKey) -> None:
        if key.project is not None:
            items = sum(self._store.items(QueueKey.for_project(s, key.project)) for s in Signal)
            self._metrics.queued_items.labels(key.project).set(items)
        self._metrics.queued_bytes.set(self._store.bytes())

    def _refresh_gauges(self) -> None:
        held = dict.fromkeys(self._held_reasons_seen, 0)
        for key in self._store.queues():
            if key.hold is not None:
                held[key.hold] = held.get(key.hold, 0) + self._store.items(key)
            elif key.project in self._holds:
                reason = self._holds[key.project].reason
                held[reason] = held.get(reason, 0) + self._store.items(key)
            if key.project is not None:
                self._refresh_queue_gauges(key)
        for reason, items in held.items():
            self._metrics.held_items.labels(reason).set(items)
        self._held_reasons_seen.update(held)
        self._metrics.queued_bytes.set(self._store.bytes())


def _owner(key: QueueKey) -> str:
    """Whose data a queue holds, for log lines; externally supplied values are repr-escaped."""
    if key.project is not None:
        return f"project {key.project!r}"
    return f"held {key.hold} value {key.attribute!r}={key.value!r}"


def _describe(key: QueueKey) -> str:
    return f"{_owner(key)} ({key.signal.value})"

"""The export workers: one per project queue (a *lane*), batching across requests and acting on Sentry's answers.

A worker starts when its queue gets data and ends when the queue is empty, so idle projects cost nothing.
Each lane sends one batch at a time and waits on its own deadlines (rate limit, back-off, hold), so one
project's outage never delays another. The project is resolved to its URL and key just before each send.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from sentryroute.routes import ProjectEndpoint, RoutesTable
from sentryroute_forwarder.export.sender import Outcome, Sender, Verdict
from sentryroute_forwarder.export.settings import ExportSettings
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.accounting import QueueAccounting
from sentryroute_forwarder.queue.bounds import Bounds
from sentryroute_forwarder.queue.compressed import CompressedBatch
from sentryroute_forwarder.queue.lane import Lane, ProjectHold, backoff_delay
from sentryroute_forwarder.queue.settings import QueueSettings
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import QueueKey, QueueStore, Record
from sentryroute_forwarder.queue.turns import SendTurns
from sentryroute_forwarder.route.wire import parse_records

__all__ = ["Exporter"]

log = logging.getLogger(__name__)

#: Batches that start per event-loop iteration at most (see `turns`); measured on the 1,000-projects shape.
STARTS_PER_TURN = 4


class Exporter:
    def __init__(
        self,
        settings: QueueSettings,
        export: ExportSettings,
        *,
        store: QueueStore,
        states: QueueStates,
        bounds: Bounds,
        accounting: QueueAccounting,
        metrics: ForwarderMetrics,
        sender: Sender,
        next_seq: Callable[[], int],
        reroute: Callable[[QueueKey], None],
    ) -> None:
        self._settings = settings
        self._export = export
        self._store = store
        self._states = states
        self._bounds = bounds
        self._accounting = accounting
        self._metrics = metrics
        self._sender = sender
        self._next_seq = next_seq
        self._reroute = reroute
        self.table: RoutesTable | None = None  # the pipeline sets each table it applies
        self._running = False
        self._drain_deadline: float | None = None  # set while shutting down: flush, then stop
        self._turns = SendTurns(STARTS_PER_TURN)

    def start(self) -> None:
        self._running = True
        for key in self._store.queues():
            self.wake(key)

    def wake(self, key: QueueKey, *, new_data: bool = False) -> None:
        """New data or a new state for a project queue: start its worker, or make it look again.

        New data does not disturb a worker waiting for its batch to fill until the batch is full: that wait
        would otherwise re-read the batch on every request.
        """
        if key.project is None or not self._running:
            return
        lane = self._states.lane(key)
        if not lane.running and self._store.items(key):
            lane.task = asyncio.create_task(self._run(lane), name=f"sentryroute-export {key.describe()}")
        elif new_data and lane.filling and not self._fills_batch(lane) and not self._pressed():
            return
        lane.wake.set()

    def revive(self, key: QueueKey) -> None:
        """Start the worker of a non-empty project queue that has none (one that failed), outside shutdown."""
        lane = self._states.lanes.get(key)
        if self._drain_deadline is None and (lane is None or not lane.running):
            self.wake(key)

    async def drain(self, deadline: float) -> None:
        """Shutdown: send what can be sent before `deadline` (monotonic), without batch waits; then stop."""
        self._drain_deadline = deadline
        for key in self._store.queues():
            self.wake(key)
        # Collected again on every round: a table applied meanwhile may have started a worker.
        while workers := [
            lane.task for lane in self._states.lanes.values() if lane.task is not None and not lane.task.done()
        ]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                break
            await asyncio.wait(workers, timeout=remaining)
        self._running = False

    async def _run(self, lane: Lane) -> None:
        try:
            await self._loop(lane)
        except Exception:
            # The data stays queued; the pipeline's sweeper revives the worker within a second.
            log.exception("%s: export worker failed", lane.key.describe())
        finally:
            lane.task = None

    async def _loop(self, lane: Lane) -> None:
        key = lane.key
        project = key.project or ""
        admitted = False  # passed `turns`: the batch is taken now, with what arrived while waiting for the turn
        while True:
            lane.wake.clear()
            if not self._store.items(key):
                return
            table = self.table
            endpoint = table.projects.get(project) if table is not None else None
            if table is not None and endpoint is None:
                self._reroute(key)  # the project left the table while this lane was sending
                return
            now = time.monotonic()
            blocked_until = math.inf if endpoint is None else self._states.blocked_until(key, now)
            if self._drain_deadline is not None and blocked_until > self._drain_deadline:
                return  # cannot be delivered within the shutdown bound
            if blocked_until > now:
                await lane.sleep(None if math.isinf(blocked_until) else blocked_until - now)
                continue
            assert endpoint is not None  # not blocked, so a table is loaded
            oldest = self._store.oldest(key)
            if (
                self._drain_deadline is None
                and oldest is not None
                and not self._fills_batch(lane)
                and not self._pressed()
            ):
                ready_at = oldest.accepted_at + self._settings.batch_timeout
                if ready_at > now:
                    lane.filling = True
                    try:
                        await lane.sleep(ready_at - now)
                    finally:
                        lane.filling = False
                    continue
            if not admitted:
                if await self._turns.wait():
                    self._metrics.export_turn_waits.inc()
                admitted = True
                continue  # a limit, a hold or a table may have arrived meanwhile: look again
            admitted = False
            await self._send(lane, endpoint)

    def _pressed(self) -> bool:
        """More than `--pace-bytes` is queued (half of it with many queues): a batch does not wait to fill (memory
        over bigger batches).

        With many projects, each queue holds less than a batch while all of them together hold more than the
        pacing bound: waiting out `--batch-timeout` in every one of them is what keeps the memory (1,000
        projects at saturation: ~48 MB queued). One project's queue or ten of them fill their batches anyway.
        With many queues their clients are paced above 1.5 x `--pace-bytes` (`Pacer.crowded`); from half of
        it, their batches leave in turn instead of waiting, so paced clients never wait on batch timeouts.
        """
        soft = self._settings.pace_bytes
        if self._store.queue_count() * self._settings.batch_max_bytes > soft:
            soft //= 2
        return self._store.bytes() > soft

    def _byte_cap(self, lane: Lane) -> int:
        max_bytes = self._settings.batch_max_bytes
        return min(max_bytes, lane.byte_cap or max_bytes)

    def _fills_batch(self, lane: Lane) -> bool:
        """Whether the queue holds a full batch (by items or bytes): O(1), asked on every request while filling."""
        key = lane.key
        return self._store.items(key) >= self._settings.batch_max_items or self._store.bytes(key) >= self._byte_cap(
            lane
        )

    async def _send(self, lane: Lane, endpoint: ProjectEndpoint) -> None:
        key = lane.key
        project = key.project or ""
        url = endpoint.tracesUrl if key.signal is Signal.TRACES else endpoint.logsUrl
        started = time.monotonic()
        try:
            batch = await self._compress(lane)
            if not batch.records:
                return  # what the queue held was corrupt on disk (dropped and counted by the store)
            outcome = await self._sender.send(
                url=url, public_key=endpoint.publicKey, gzipped=batch.gzipped, signal=key.signal
            )
        finally:
            lane.sending = 0
        now = time.monotonic()
        self._metrics.export_duration.observe(now - started)
        self._metrics.export_requests.inc((project, outcome.verdict.value))
        self._accounting.note_project(project)
        self._accounting.count_response(project, str(outcome.status or "none"))
        for signal, seconds in self._states.limits.impose(project, outcome.limits, now=now).items():
            self._metrics.rate_limited_seconds.inc((project, signal.value), seconds)
        self._settle(lane, endpoint, batch, outcome, now)
        self._bounds.trim(key, now)
        self._accounting.refresh(key)

    async def _compress(self, lane: Lane) -> CompressedBatch:
        """The next batch, compressed; from here on it is held as its gzip body (see `compressed`), and the
        store's copies of its records' payloads are released until an answer needs them back."""
        key = lane.key
        records = self._store.peek(key, max_items=self._settings.batch_max_items, max_bytes=self._byte_cap(lane))
        lane.sending = len(records)  # from now: neither trimmed nor re-routed
        # Compressed piece by piece: never joined into one buffer.
        batch = CompressedBatch(records, await self._sender.compress([record.payload for record in records]))
        self._store.release(key, batch)
        return batch

    def _settle(
        self, lane: Lane, endpoint: ProjectEndpoint, batch: CompressedBatch, outcome: Outcome, now: float
    ) -> None:
        """Act on an answer: acknowledge, keep (waiting on a limit or a back-off), split, hold or drop.

        Only the records' metadata is at hand: what needs their payloads asks the store for them."""
        key = lane.key
        project = key.project or ""
        verdict = outcome.verdict
        if verdict is not Verdict.RETRY and lane.failures:
            log.info("%s: Sentry answers again (%s) after %d failures", key.describe(), outcome.status, lane.failures)
            lane.failures, lane.backoff_until = 0, 0.0
        if verdict is Verdict.DELIVERED:
            self._store.ack(key, batch.seqs)  # never sent again
            self._bounds.delivered(batch.nbytes)
            lane.relax_byte_cap(self._settings.batch_max_bytes)
            self._metrics.exported_items.inc((key.signal.value, project), batch.items)
        elif verdict is Verdict.RATE_LIMITED:
            until = self._states.limits.until(project, key.signal, now=now)
            log.info("%s: rate limited by Sentry for %.0f s", key.describe(), max(0.0, until - now))
        elif verdict is Verdict.RETRY:
            lane.failures += 1
            delay = backoff_delay(lane.failures, initial=self._export.retry_initial, maximum=self._export.retry_max)
            lane.backoff_until = now + delay
            log.warning(
                "%s: export failed (%s: %s), retry %d in %.2f s",
                key.describe(),
                outcome.status or "no answer",
                outcome.detail,
                lane.failures,
                delay,
            )
        elif verdict is Verdict.TOO_LARGE:
            self._bisect(lane, batch, reason="too_large", why="is too large for Sentry")
        elif verdict is Verdict.UNDECODABLE:
            # Intake validation keeps undecodable data out of batches; this is the defence behind it.
            self._bisect(lane, batch, reason="rejected_400", why=f"is refused by Sentry (400: {outcome.detail})")
        elif verdict is Verdict.HOLD:
            self._hold(project, endpoint, outcome, now)
        else:
            self._store.ack(key, batch.seqs)
            self._accounting.dropped(key.signal, f"rejected_{outcome.status}", batch.items)
            log.warning("%s: Sentry rejected a batch (%s: %s); dropped", key.describe(), outcome.status, outcome.detail)

    def _hold(self, project: str, endpoint: ProjectEndpoint, outcome: Outcome, now: float) -> None:
        """401 / 403: stop sending to this project until a table changes its id, key or URLs."""
        if self.table is not None and self.table.projects.get(project) != endpoint:
            return  # a new table changed the project while this was in flight: retry with it
        self._states.holds[project] = ProjectHold(outcome.hold_reason or "forbidden", endpoint)
        log.warning(
            "project %r: Sentry refused its key or id (%s: %s); holding its data until the routes table changes it",
            project,
            outcome.status,
            outcome.detail,
        )
        for signal in Signal:
            self._bounds.trim(QueueKey.for_project(signal, project), now)
        self._accounting.refresh_all()

    def _bisect(self, lane: Lane, batch: CompressedBatch, *, reason: str, why: str) -> None:
        """413 / 400: halve the batch by records, then a record by resources, until the resource Sentry refuses
        is alone; that one is dropped and counted under `reason`, everything else is delivered."""
        key = lane.key
        nbytes = batch.nbytes
        if len(batch.records) > 1:
            lane.byte_cap = max(1, nbytes // 2)
            return
        restored = self._store.restore(key, batch)
        if not restored:
            return  # no longer queued (re-routed meanwhile)
        record = restored[0]
        if record.resources <= 1:
            self._store.ack(key, [record.seq])
            self._accounting.dropped(key.signal, reason, record.items)
            log.warning("%s: one resource of %d bytes %s; dropped", key.describe(), nbytes, why)
            return
        resources = parse_records(record.payload)
        half = len(resources) // 2
        pieces = [
            Record(
                seq=self._next_seq(),
                signal=record.signal,
                payload=b"".join(r.data for r in part),
                items=sum(r.items for r in part),
                resources=len(part),
                attribute=record.attribute,
                value=record.value,
                accepted_at=record.accepted_at,
                namespace=record.namespace,
            )
            for part in (resources[:half], resources[half:])
        ]
        self._store.replace(key, record.seq, pieces)
        lane.byte_cap = max(1, nbytes // 2)

"""Pacing: a client's answer is held while its queues are backed up, so the client slows to the export rate.

At saturation the receivers take data faster than the export lanes deliver it (they share the core), and the
queue would grow until `--max-bytes` answers 429. Clients send their next request only after an answer (an
SDK's exports in flight, a collector's, a load generator's connections), so holding answers slows each of them
to the rate its data leaves the queue, and the queue stays near `--pace-bytes` instead of the hard bound.

A request is held after its data is accepted (queued and, with `--queue-dir`, written): its answer is a success
whether it was released or its hold timed out (`--pace-timeout`, or half of a gRPC client's remaining deadline
when that is shorter) — the data is ours, and a client told to retry would send it twice. What is paced:
- nothing while everything queued fits in `--pace-bytes` (one comparison per request);
- above it, a request whose project queue holds more than an equal share of `--pace-bytes` (among the
  non-empty queues, but at least one batch) and can flow: a slow project's clients wait, clients of projects
  that keep up do not;
- with many queues (their equal share below one batch) above 1.5 x `--pace-bytes` in all, every request into a
  queue that can flow: each queue holds less than a batch, so no share ever holds anyone, while together they
  hold the memory (1,000 projects at saturation: ~48 MB queued; bounded: 90 MB peak RSS instead of 114, p99
  12 ms, 0.76x the throughput);
- never data for queues that cannot flow (rate limited, failing, held): admission bounds those (half of the
  global bound, SPEC §6), and a project that is down keeps its data without holding its clients.
Held answers are looked at again when a batch is delivered and on every sweep, and released in arrival order;
on shutdown all are released.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.queue.settings import QueueSettings
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import QueueKey, QueueStore

__all__ = ["CROWDED", "Pacer", "after_commit"]

#: With many queues (see `Pacer.crowded`), requests are paced above this many times `--pace-bytes` queued in all.
#: Measured on the 1,000-services shape: 1.0x cost 48 % of throughput, 1.5x 24 % (p99 12 ms), unbounded 114 MB.
CROWDED = 1.5


class _Held:
    """One held answer: the project queues it waits for, and what its client awaits."""

    __slots__ = ("future", "keys", "timer")

    def __init__(self, keys: tuple[QueueKey, ...], future: asyncio.Future[None]) -> None:
        self.keys = keys
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class Pacer:
    def __init__(
        self, settings: QueueSettings, *, store: QueueStore, states: QueueStates, metrics: ForwarderMetrics
    ) -> None:
        self._soft = settings.pace_bytes
        self._timeout = settings.pace_timeout
        self._floor = min(settings.batch_max_bytes, settings.pace_bytes)
        self._crowd_bytes = settings.pace_bytes * CROWDED
        self._store = store
        self._states = states
        self._held: dict[_Held, None] = {}  # in arrival order
        self._outcomes = {outcome: metrics.paced_requests.labels(outcome) for outcome in ("released", "timed_out")}
        metrics.held_answers.set_function(lambda: len(self._held))  # read when scraped

    def hold(self, keys: Iterable[QueueKey], *, limit: float | None = None) -> asyncio.Future[None] | None:
        """After a request's records were appended to `keys`: a future to await before answering, or None when
        its queues keep up. `limit`: the longest the client can wait (seconds), when it said so."""
        total = self._store.bytes()
        if total <= self._soft:
            return None
        timeout = self._timeout if limit is None else min(self._timeout, limit)
        if timeout <= 0:
            return None
        share, now = self._share(), time.monotonic()
        backed_up = tuple(key for key in dict.fromkeys(keys) if self._backed_up(key, share, now))
        if not backed_up and self.crowded(total):
            backed_up = tuple(key for key in dict.fromkeys(keys) if self._flows(key, now))
        if not backed_up:
            return None
        loop = asyncio.get_running_loop()
        held = _Held(backed_up, loop.create_future())
        held.timer = loop.call_later(timeout, self._release, held, "timed_out")
        held.future.add_done_callback(lambda _: self._forget(held))  # also when the client went away (cancelled)
        self._held[held] = None
        return held.future

    def progress(self) -> None:
        """Queues shrank or changed state: release the held answers whose queues keep up now."""
        if not self._held:
            return
        total = self._store.bytes()
        calm, crowded = total <= self._soft, self.crowded(total)
        share, now = self._share(), time.monotonic()
        for held in list(self._held):
            if calm or not (crowded or any(self._backed_up(key, share, now) for key in held.keys)):
                self._release(held, "released")

    def release_all(self) -> None:
        """Shutdown: answer every held request now."""
        for held in list(self._held):
            self._release(held, "released")

    def _share(self) -> float:
        # At least one batch (or the whole soft bound when that is smaller): a queue that fits in its next
        # upstream request is no backlog, all of it leaves with that request. Without this floor, with 1,000
        # projects the share (16 KiB) is below one SDK-sized request: data merely waiting out its batch timeout
        # held almost every client (measured: p99 24-64 ms instead of 12-13 ms on that benchmark shape).
        return max(self._floor, self._soft / max(1, self._store.queue_count()))

    def crowded(self, total: int) -> bool:
        """Many queues, each below one batch, together above `CROWDED` x `--pace-bytes`: every flowing queue's
        clients wait (the per-queue share, never less than one batch, would hold no one)."""
        return total > self._crowd_bytes and self._soft / max(1, self._store.queue_count()) < self._floor

    def _backed_up(self, key: QueueKey, share: float, now: float) -> bool:
        return self._store.bytes(key) > share and self._flows(key, now)

    def _flows(self, key: QueueKey, now: float) -> bool:
        # Stuck data (rate limited, failing, held) is bounded by admission, not paced.
        return key.project is not None and self._states.stuck_reason(key, now) is None

    def _release(self, held: _Held, outcome: str) -> None:
        if not held.future.done():
            held.future.set_result(None)
            self._outcomes[outcome].inc()
        self._forget(held)

    def _forget(self, held: _Held) -> None:
        if held.timer is not None:
            held.timer.cancel()
            held.timer = None
        self._held.pop(held, None)


async def after_commit(commit: Awaitable[None], paced: Awaitable[None]) -> None:
    """A request's data is durable (`commit`), then its answer waits for pacing."""
    await commit
    await paced

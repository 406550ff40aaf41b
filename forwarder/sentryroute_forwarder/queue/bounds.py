"""Admission and age bounds: the global bound, the stuck data budget, `max_hold`, and the Retry-After estimate.

Pushing back is the rule, dropping accepted data the exception:

- the global bound (`--max-bytes` in memory, `--max-disk-bytes` with `--queue-dir`) refuses requests that do
  not fit (429 / RESOURCE_EXHAUSTED);
- data for queues that cannot flow (rate limited, failing, held) may fill at most half of that bound; a
  request that would add to stuck queues past it is refused, so healthy projects always keep the other half
  and one project's outage never turns into 429s for requests that carry only healthy data;
- above the soft bound (`--pace-bytes`), answers wait while their queues catch up (`Pacer`);
- only `max_hold` drops accepted data: a stuck queue's records older than that are dropped and counted under
  the reason the queue is stuck.

Retry-After tells clients how long until there is room: the excess over the bound divided by the recent
delivery rate (for stuck data: until its queue may send again), not a constant.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from sentryroute_forwarder.log_throttle import LogThrottle
from sentryroute_forwarder.queue.accounting import QueueAccounting
from sentryroute_forwarder.queue.pacing import Pacer
from sentryroute_forwarder.queue.settings import QueueSettings
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import QueueKey, QueueStore

__all__ = ["Bounds"]

log = logging.getLogger(__name__)

#: Longest Retry-After estimate handed to clients (seconds): beyond it the estimate says little.
MAX_RETRY_ESTIMATE = 60.0


class Bounds:
    def __init__(
        self,
        settings: QueueSettings,
        *,
        store: QueueStore,
        states: QueueStates,
        accounting: QueueAccounting,
        pacer: Pacer,
    ) -> None:
        self._settings = settings
        self._pacer = pacer
        self._store = store
        self._states = states
        self._accounting = accounting
        self._notices = LogThrottle(interval=10.0)  # a stuck queue may drop on every sweep
        self._delivered = 0  # bytes delivered since the last rate sample
        self._rate = 0.0  # bytes/s delivered, smoothed
        self._sampled_at: float | None = None

    @property
    def bound(self) -> int:
        return self._settings.bound

    def has_room(self, nbytes: int) -> bool:
        if self._store.footprint() + nbytes <= self.bound:
            return True
        # A disk queue's footprint includes delivered records not reclaimed yet: reclaim before refusing.
        self._store.maintain(urgent=True)
        return self._store.footprint() + nbytes <= self.bound

    def stuck_room(self, keys: Iterable[tuple[QueueKey, int]], now: float) -> float | None:
        """None when a request's parts (queue, bytes) fit; else seconds until its stuck queues may flow."""
        adding = 0
        waits: list[float] = []
        for key, nbytes in keys:
            if self._states.stuck_reason(key, now) is not None:
                adding += nbytes
                waits.append(self._states.blocked_until(key, now) - now if key.project is not None else math.inf)
        if not adding:
            return None
        stuck = sum(
            self._store.bytes(key) for key in self._store.queues() if self._states.stuck_reason(key, now) is not None
        )
        if stuck + adding <= self.bound // 2:
            return None
        return min(waits)

    def retry_after(self, nbytes: int) -> float | None:
        """Seconds until `nbytes` more may fit at the recent delivery rate (None: nothing is flowing)."""
        excess = self._store.footprint() + nbytes - self.bound
        if excess <= 0:
            return 0.0
        if self._rate <= 0:
            return None
        return min(MAX_RETRY_ESTIMATE, excess / self._rate)

    def delivered(self, nbytes: int) -> None:
        """A batch was delivered: counted for the delivery rate, and held answers may go now (pacing)."""
        self._delivered += nbytes
        self._pacer.progress()

    def sample_rate(self, now: float) -> None:
        """Fold what was delivered since the last call into the smoothed delivery rate (called by the sweeper)."""
        if self._sampled_at is not None and now > self._sampled_at:
            current = self._delivered / (now - self._sampled_at)
            self._rate = current if self._rate <= 0 else 0.5 * self._rate + 0.5 * current
        self._delivered, self._sampled_at = 0, now

    def trim(self, key: QueueKey, now: float) -> None:
        """Drop a stuck queue's records older than `max_hold` (never a batch in flight)."""
        reason = self._states.stuck_reason(key, now)
        if reason is None:
            return
        # A batch being sent stays (its answer decides its fate).
        sending = self._states.sending(key)
        oldest_kept = now - self._settings.max_hold
        dropped = 0
        while (oldest := self._store.oldest(key, skip=sending)) is not None and oldest.accepted_at < oldest_kept:
            self._store.drop_oldest(key, skip=sending)
            self._accounting.dropped(oldest.signal, reason, oldest.items)
            dropped += oldest.items
        if not dropped:
            return
        self._accounting.refresh(key)
        # Keyed by the description (values cut short): remembered keys must not keep long client values alive.
        queue = key.describe()
        report = self._notices.add(queue, dropped, now=now)
        if report:
            log.warning(
                "%s is %s: dropped %d items older than --max-hold (%.0f s)",
                queue,
                reason.replace("_", " "),
                report,
                self._settings.max_hold,
            )

"""Memory bounds: the global `max_bytes`, and the byte share and `max_hold` age of queues that cannot flow.

A stuck queue (rate limited, failing, held) keeps at most `max_bytes / (2 * non-empty queues)` bytes and
`max_hold` seconds of data; past either, its oldest data is dropped and counted under the reason it is
stuck. However many queues are stuck — a burst of distinct held values makes hundreds — together they keep
at most half the global bound, so healthy projects always have the other half and receivers answer 429
only when healthy traffic itself fills it.
"""

from __future__ import annotations

import logging

from sentryroute_forwarder.log_throttle import LogThrottle
from sentryroute_forwarder.queue.accounting import QueueAccounting
from sentryroute_forwarder.queue.settings import QueueSettings
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import QueueKey, QueueStore

__all__ = ["Bounds"]

log = logging.getLogger(__name__)


class Bounds:
    def __init__(
        self, settings: QueueSettings, *, store: QueueStore, states: QueueStates, accounting: QueueAccounting
    ) -> None:
        self._settings = settings
        self._store = store
        self._states = states
        self._accounting = accounting
        self._notices = LogThrottle(interval=10.0)  # a stuck queue may drop on every request

    def has_room(self, nbytes: int) -> bool:
        return self._store.bytes() + nbytes <= self._settings.max_bytes

    def share(self) -> int:
        return self._settings.max_bytes // (2 * max(1, self._store.queue_count()))

    def trim(self, key: QueueKey, now: float) -> None:
        """Drop the oldest data of a stuck queue past its byte share or `max_hold` age (never a batch in flight)."""
        reason = self._states.stuck_reason(key, now)
        if reason is None:
            return
        # A batch being sent stays (its answer decides its fate); what queued up behind it is trimmed, so a
        # project whose requests hang cannot fill the global bound while it waits for its timeouts.
        sending = self._states.sending(key)
        share, oldest_kept = self.share(), now - self._settings.max_hold
        dropped = 0
        while (oldest := self._store.oldest(key, skip=sending)) is not None and (
            oldest.accepted_at < oldest_kept or self._store.bytes(key) > share
        ):
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
                "%s is %s: dropped its %d oldest items (bounds: %d bytes, %.0f s)",
                queue,
                reason.replace("_", " "),
                report,
                share,
                self._settings.max_hold,
            )

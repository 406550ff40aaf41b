"""Log lines for dropped values: once per value per interval, with a bounded memory of values (SPEC §3 `unrouted`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from sentryroute_forwarder.log_throttle import LogThrottle
from sentryroute_forwarder.logs import quoted
from sentryroute_forwarder.route.split import DroppedValue

__all__ = ["DropNotices"]

log = logging.getLogger(__name__)


class DropNotices:
    """Logs "dropping N spans of service.name='x' (unrouted)" at most once per `interval` for each value."""

    def __init__(
        self, *, interval: float = 60.0, capacity: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._throttle = LogThrottle(interval=interval, capacity=capacity)
        self._clock = clock

    def note(self, signal: str, dropped: Iterable[DroppedValue]) -> None:
        now = self._clock()
        for entry in dropped:
            value = quoted(entry.value)  # also the key: remembered values stay short whatever clients send
            items = self._throttle.add((signal, entry.reason, entry.attribute, value), entry.items, now=now)
            if not items:
                continue
            log.warning(
                "dropping %d %s of %s=%s (%s); further drops of this value are logged at most every %gs",
                items,
                signal,
                entry.attribute,
                value,
                entry.reason,
                self._interval,
            )

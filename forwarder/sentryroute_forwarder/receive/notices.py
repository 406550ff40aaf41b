"""Rate-limited log lines for dropped values: once per value per interval, with a bounded memory of values."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from sentryroute_forwarder.route.split import DroppedValue

__all__ = ["DropNotices"]

log = logging.getLogger(__name__)

_MAX_VALUE_CHARS = 200


class DropNotices:
    """Logs "dropping N spans of service.name='x' (unrouted)" at most once per `interval` for each value.

    Values are client-supplied and unbounded in number: only the `capacity` most recently logged are
    remembered, so a flood of distinct values costs bounded memory (and at worst more log lines).
    """

    def __init__(
        self, *, interval: float = 60.0, capacity: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._capacity = capacity
        self._clock = clock
        self._last_logged: OrderedDict[tuple[str, str, str | None, str | None], float] = OrderedDict()

    def note(self, signal: str, dropped: Iterable[DroppedValue]) -> None:
        now = self._clock()
        for entry in dropped:
            key = (signal, entry.reason, entry.attribute, entry.value)
            last = self._last_logged.get(key)
            if last is not None and now - last < self._interval:
                continue
            self._last_logged[key] = now
            self._last_logged.move_to_end(key)
            while len(self._last_logged) > self._capacity:
                self._last_logged.popitem(last=False)
            value = "(missing or not a string)" if entry.value is None else repr(entry.value[:_MAX_VALUE_CHARS])
            log.warning(
                "dropping %d %s of %s=%s (%s); further drops of this value are logged at most every %gs",
                entry.items,
                signal,
                entry.attribute,
                value,
                entry.reason,
                self._interval,
            )

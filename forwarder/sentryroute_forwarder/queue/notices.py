"""Log lines about dropped data, throttled: a stuck queue may drop on every incoming request."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

__all__ = ["DropNotices"]

_MAX_REMEMBERED = 1024


class DropNotices:
    """Accumulates drops per queue and says when to log them: at most once per `interval` seconds per queue.

    The metrics count every drop at once; only the log line waits.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._last: dict[Hashable, float] = {}
        self._unreported: Counter[Hashable] = Counter()

    def add(self, queue: Hashable, items: int, *, now: float) -> int:
        """Record `items` dropped; returns how many to log now (0: stay quiet for a while)."""
        self._unreported[queue] += items
        if now - self._last.get(queue, -self._interval) < self._interval:
            return 0
        if len(self._last) >= _MAX_REMEMBERED:  # held values can be many: forget the quiet ones
            self._last = {q: t for q, t in self._last.items() if now - t < self._interval or q in self._unreported}
        self._last[queue] = now
        return self._unreported.pop(queue)

"""Throttled log lines: the receivers and the queue may drop data on every request, but log it only now and then."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["LogThrottle"]


@dataclass(slots=True)
class _Entry:
    logged_at: float
    unreported: int = 0


class LogThrottle:
    """Says when to log about a key — at most once per `interval` seconds — and how much happened since the last line.

    Keys can be client-supplied values, unbounded in number: only the `capacity` most recently seen are remembered,
    so a flood of distinct keys costs bounded memory (and at worst more log lines). Metrics count every item at
    once; only the log line waits.
    """

    def __init__(self, *, interval: float, capacity: int = 1000) -> None:
        self._interval = interval
        self._capacity = capacity
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def add(self, key: Hashable, count: int, *, now: float) -> int:
        """Record `count` more for `key`; returns the count to log now (0: stay quiet for a while)."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(logged_at=now - self._interval)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        entry.unreported += count
        if now - entry.logged_at < self._interval:
            return 0
        report, entry.unreported, entry.logged_at = entry.unreported, 0, now
        return report

"""Which reported values the operator may create projects for (`--auto-create`, SPEC §3 `refused`, §5).

A refusal is an answer the forwarder acts on at once (it drops that value's data, counted with the
reason), so it is decided here, in one place, with the three reasons the SPEC names.
"""

from __future__ import annotations

import time
from collections import deque
from fnmatch import fnmatchcase

from ..derive import is_placeholder

HOUR = 3600.0


class AutoCreatePolicy:
    def __init__(self, *, deny: tuple[str, ...], per_hour: int) -> None:
        self.deny = deny
        self.per_hour = per_hour
        self._created: deque[float] = deque()  # monotonic times of creations in the last hour

    def refusal(self, value: str) -> str | None:
        """None when `value` may be created now, else the reason: placeholder, denied or rate_limited."""
        if not value or is_placeholder(value):
            return "placeholder"
        if any(fnmatchcase(value, pattern) for pattern in self.deny):
            return "denied"
        now = time.monotonic()
        while self._created and now - self._created[0] > HOUR:
            self._created.popleft()
        if len(self._created) >= self.per_hour:
            return "rate_limited"
        return None

    def record_creation(self) -> None:
        self._created.append(time.monotonic())

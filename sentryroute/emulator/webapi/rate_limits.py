"""Sentry's Web API fixed-window rate limiter, per (endpoint, caller), with its response headers.

Windows are aligned to the epoch like Sentry's Redis limiter (`bucket = int(now / window)`), and
`X-Sentry-Rate-Limit-Reset` is the window end in UTC epoch seconds (reference §1.10).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds
    window: float

    def headers(self) -> dict[str, str]:
        return {
            "X-Sentry-Rate-Limit-Limit": str(self.limit),
            "X-Sentry-Rate-Limit-Remaining": str(self.remaining),
            "X-Sentry-Rate-Limit-Reset": str(self.reset),
        }

    def detail(self) -> str:
        """Sentry's 429 message for a fixed-window limit."""
        return (
            f"You are attempting to use this endpoint too frequently. "
            f"Limit is {self.limit} requests in {self.window:g} seconds"
        )


class FixedWindowLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, float, int], int] = {}  # (endpoint, caller, window, bucket)

    def hit(self, endpoint: str, caller: str, *, limit: int, window: float) -> Decision:
        now = time.time()
        bucket = int(now / window)
        reset = math.ceil((bucket + 1) * window)
        key = (endpoint, caller, window, bucket)
        with self._lock:
            if len(self._counts) > 1000:  # forget finished windows so the table stays small
                self._counts = {k: v for k, v in self._counts.items() if k[3] >= int(now / k[2])}
            count = self._counts[key] = self._counts.get(key, 0) + 1
        return Decision(
            allowed=count <= limit, limit=limit, remaining=max(0, limit - count), reset=reset, window=window
        )

"""Web API 429 handling: how long to wait, and a per-client gate so concurrent calls wait too (Part A §1.10).

Sentry's 429 carries `X-Sentry-Rate-Limit-Reset` (UTC epoch seconds) and no `Retry-After`. The upstream
exporter slept inside its only worker, stalling every other creation; here only the calling task sleeps,
and other calls through the same client notice the gate before they send, without any lock held.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping

DEFAULT_WAIT = 60.0


def rate_limit_wait(headers: Mapping[str, str], *, max_wait: float, now: float | None = None) -> float:
    """Seconds to wait after a 429: reset epoch, else Retry-After (seconds or HTTP date), else 60 s; clamped."""
    wall = time.time() if now is None else now
    wait = _seconds_until_epoch(headers.get("X-Sentry-Rate-Limit-Reset"), wall)
    if wait is None:
        wait = _retry_after(headers.get("Retry-After"), wall)
    if wait is None:
        wait = DEFAULT_WAIT
    return min(max(wait, 0.0), max_wait)


def _seconds_until_epoch(raw: str | None, wall: float) -> float | None:
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return None if value is None or value != value else value - wall  # NaN → None


def _retry_after(raw: str | None, wall: float) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(raw).timestamp() - wall
    except (TypeError, ValueError):
        return None


class RateLimitGate:
    """ "Blocked until" on the monotonic clock, shared by every call of one client."""

    def __init__(self) -> None:
        self._blocked_until = 0.0

    def block_for(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    async def wait(self) -> None:
        """Sleep (this task only) until the gate opens; loops because another 429 may push it further."""
        remaining = self._blocked_until - time.monotonic()
        while remaining > 0:
            await asyncio.sleep(remaining)
            remaining = self._blocked_until - time.monotonic()

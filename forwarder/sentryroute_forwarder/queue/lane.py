"""The export state of one project queue (a *lane*: one project, one signal) and of a refused project."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from sentryroute.routes import ProjectEndpoint
from sentryroute_forwarder.queue.store import QueueKey

__all__ = ["Lane", "ProjectHold", "backoff_delay"]


@dataclass(slots=True)
class Lane:
    """A project queue's worker state. Rate limits live in `RateLimits`, holds in `ProjectHold`."""

    key: QueueKey
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    sending: int = 0  # records of the batch being sent (the queue's oldest): never trimmed nor re-routed
    failures: int = 0  # consecutive 5xx / transport failures (> 0 = the lane is failing)
    backoff_until: float = 0.0
    byte_cap: int | None = None  # learned from 413 answers: batches stay under it
    filling: bool = False  # waiting (up to the batch timeout) for its batch to fill

    def relax_byte_cap(self, batch_max_bytes: int) -> None:
        """After a delivery, let batches grow back slowly: one oversized resource must not shrink them forever."""
        if self.byte_cap is not None:
            grown = self.byte_cap + self.byte_cap // 4 + 1
            self.byte_cap = None if grown >= batch_max_bytes else grown

    @property
    def in_flight(self) -> bool:
        return self.sending > 0

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def sleep(self, seconds: float | None) -> None:
        """Sleep up to `seconds` (None: forever), returning early when the lane is woken.

        The deadline is a plain timer that sets `wake`, not `asyncio.timeout`: with 1,000 projects every
        request ends one batch wait, and a timeout cancels the task and raises through it each time (measured:
        ~5 % of the forwarder's CPU on the 1,000-projects shape).
        """
        if seconds is None:
            await self.wake.wait()
            return
        timer = asyncio.get_running_loop().call_later(max(0.0, seconds), self.wake.set)
        try:
            await self.wake.wait()
        finally:
            timer.cancel()


@dataclass(frozen=True, slots=True)
class ProjectHold:
    """Sentry refused a project's key or id (401 / 403): its data waits until the table changes them."""

    reason: str  # project_id | unauthorized | forbidden
    endpoint: ProjectEndpoint  # as it was when refused; a table with another id, key or URL releases the hold


def backoff_delay(failures: int, *, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential back-off with "equal jitter": half fixed, half random, so lanes do not retry in lockstep."""
    delay = min(maximum, initial * 2 ** max(0, failures - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)

"""The provisioning scheduler: background tasks by typed key, one at a time per key, with retry deadlines.

Tasks run concurrently, so one route waiting on a Web API 429 never holds up another route or the table.
The reconcile loop asks `running(key)` before starting work, and `next_deadline()` how long it may sleep.
A task that raises is a programming error (provisioning turns every Sentry answer into a result): it is
logged with its traceback, never mistaken for an unreachable API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class TaskKind(StrEnum):
    ROUTE = "route"  # provision one SentryRoute's items
    CATALOG = "catalog"  # list one connection's projects (the start-up barrier needs one listing)
    CLUSTER_FALLBACK = "cluster-fallback"  # the operator-wide fallback project
    REPORTED = "reported"  # values reported by forwarders (identity routes, auto-create)
    HEAL = "heal"  # re-verify projects a forwarder reported Sentry refused
    REPORT_CONFIGMAP = "report-configmap"  # re-create the deleted report ConfigMap


@dataclass(frozen=True)
class TaskKey:
    kind: TaskKind
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}" if self.name else str(self.kind)


class Scheduler:
    def __init__(self, *, on_done: Callable[[], None]) -> None:
        """`on_done` runs whenever a task ends (the loop re-plans: a finished task may change the table)."""
        self._on_done = on_done
        self._tasks: dict[TaskKey, asyncio.Task[None]] = {}
        self._retry_at: dict[TaskKey, float] = {}

    def running(self, key: TaskKey) -> bool:
        return key in self._tasks

    def start(self, key: TaskKey, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as the task `key`; the caller checks `running(key)` first."""
        if key in self._tasks:
            coro.close()
            raise RuntimeError(f"task {key} is already running")
        self._retry_at.pop(key, None)
        task = asyncio.create_task(coro, name=str(key))
        self._tasks[key] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(key) is t:
                del self._tasks[key]
            if not t.cancelled() and t.exception() is not None:
                log.error("Task %s failed unexpectedly", key, exc_info=t.exception())
            self._on_done()

        task.add_done_callback(done)

    def retry(self, key: TaskKey, at: float) -> None:
        """Ask for `key` to run again at monotonic time `at` (the loop checks `due`)."""
        self._retry_at[key] = at

    def due(self, key: TaskKey, now: float) -> bool:
        at = self._retry_at.get(key)
        return at is not None and now >= at and key not in self._tasks

    def forget(self, key: TaskKey) -> None:
        """Cancel `key` and its retry (its route was deleted)."""
        self._retry_at.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    def next_deadline(self) -> float | None:
        waiting = [at for key, at in self._retry_at.items() if key not in self._tasks]
        return min(waiting, default=None)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._retry_at.clear()

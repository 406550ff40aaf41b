"""The queue's metrics: dropped items by reason, and the gauges of queued and held data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from sentryroute_forwarder.export.sender import Verdict
from sentryroute_forwarder.metrics import ForwarderMetrics, SeriesCounter
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import QueueKey, QueueStore

__all__ = ["QueueAccounting"]


class QueueAccounting:
    def __init__(self, metrics: ForwarderMetrics, store: QueueStore, states: QueueStates) -> None:
        self._metrics = metrics
        self._store = store
        self._states = states
        self._held_reasons: set[str] = set()  # every label ever set, so a gauge goes back to 0
        self.projects: set[str] = set()  # projects with per-project metric labels
        self._statuses: dict[str, set[str]] = {}  # project → HTTP statuses counted in export_responses
        self._queued_projects: set[str] = set()  # projects with a `queued_items` series
        # Read when scraped, not written per request.
        metrics.queued_bytes.set_function(store.bytes)
        metrics.queued_items.source = self._queued_series

    def dropped(self, signal: Signal, reason: str, items: int) -> None:
        if items:
            self._metrics.dropped_items.labels(signal.value, reason).inc(items)

    def refresh(self, key: QueueKey) -> None:
        """After a queue changed: make sure its project has a `queued_items` series (one dict lookup per request;
        the value is read from the store when scraped, like `queued_bytes`)."""
        project = key.project
        if project is not None and project not in self._queued_projects:
            self._queued_projects.add(project)
            self.projects.add(project)

    def _queued_series(self) -> Iterator[tuple[Sequence[str], float]]:
        items = self._store.items
        for project in list(self._queued_projects):
            yield (project,), sum(items(QueueKey.for_project(signal, project)) for signal in Signal)

    def note_project(self, project: str) -> None:
        """`project` got per-project metric labels (an export, a rate limit)."""
        self.projects.add(project)

    def count_response(self, project: str, status: str) -> None:
        """One of Sentry's answers to `project`, by HTTP status (remembered, so `forget_project` can remove it)."""
        self._metrics.export_responses.inc((project, status))
        self._statuses.setdefault(project, set()).add(status)

    def forget_project(self, project: str) -> None:
        """Remove every per-project metric series of a project that left the table (cardinality stays bounded
        by the table, not by every project ever routed)."""
        metrics = self._metrics
        series: list[tuple[SeriesCounter, tuple[str, ...]]] = []
        for signal in Signal:
            series.append((metrics.exported_items, (signal.value, project)))
            series.append((metrics.rate_limited_seconds, (project, signal.value)))
        series.extend((metrics.export_requests, (project, verdict.value)) for verdict in Verdict)
        series.extend((metrics.export_responses, (project, status)) for status in self._statuses.pop(project, ()))
        for metric, labels in series:
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        self.projects.discard(project)
        self._queued_projects.discard(project)

    def refresh_all(self) -> None:
        """Every gauge, `held_items` included (walks all queues: on table changes, holds and the sweeper)."""
        held = dict.fromkeys(self._held_reasons, 0)
        for key in self._store.queues():
            if key.hold is not None:
                held[key.hold] = held.get(key.hold, 0) + self._store.items(key)
            elif key.project in self._states.holds:
                reason = self._states.holds[key.project].reason
                held[reason] = held.get(reason, 0) + self._store.items(key)
            self.refresh(key)
        for reason, items in held.items():
            self._metrics.held_items.labels(reason).set(items)
        self._held_reasons.update(held)

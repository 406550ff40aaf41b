"""Turning routes.json contents from any source (file, ConfigMap) into applied tables.

A table that cannot be used — bad JSON, another major version, a route naming a missing project —
never replaces the last good one: it is counted in `sentryroute_routes_reload_errors_total` and logged
once (the same bad content seen again on the next poll is neither counted nor logged again).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from sentryroute.routes import RoutesTable, RoutesTableError, parse_routes_table
from sentryroute_forwarder.metrics import ForwarderMetrics

__all__ = ["TableLoader"]

log = logging.getLogger(__name__)


class TableLoader:
    def __init__(self, *, on_table: Callable[[RoutesTable], None], metrics: ForwarderMetrics) -> None:
        self._on_table = on_table
        self._metrics = metrics
        self._last_digest: bytes | None = None  # of the contents last applied or rejected
        self.table: RoutesTable | None = None  # the table in use

    def offer(self, raw: bytes, *, origin: str) -> bool:
        """Apply `raw` if it is new and valid; True when a new table was applied. `origin` names the source."""
        digest = hashlib.sha256(raw).digest()
        if digest == self._last_digest:
            return False
        self._last_digest = digest
        try:
            table = parse_routes_table(raw)
        except RoutesTableError as exc:
            self._reject(origin, str(exc))
            return False
        if self.table is not None and table.revision == self.table.revision:
            return False  # same content, written differently
        try:
            self._on_table(table)
        except Exception as exc:  # a table the pipeline cannot take must not stop the watcher
            log.exception("applying the routes table from %s failed", origin)
            self._reject(origin, f"{type(exc).__name__} while applying it")
            return False
        self.table = table
        log.info(
            "routes table %s from %s: %d routes, %d projects, %d pending, unrouted=%s",
            table.revision,
            origin,
            len(table.routes),
            len(table.projects),
            len(table.pending),
            table.unrouted,
        )
        return True

    def _reject(self, origin: str, reason: str) -> None:
        self._metrics.routes_reload_errors.inc()
        kept = self.table.revision if self.table is not None else "none (not ready)"
        log.error("rejected the routes table from %s: %s; keeping revision %s", origin, reason, kept)

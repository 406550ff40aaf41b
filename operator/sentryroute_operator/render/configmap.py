"""Writing the routes table into its ConfigMap: created by the operator, written only on a new revision.

The size guard lives here because it decides what is written: a table over the limit is fitted first
(`fit.fit_table` leaves its least important entries out), so routing never freezes (SPEC §3). Only a table
whose always-kept part (fallbacks and their projects) alone exceeds the limit is not written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

from sentryroute.routes import RoutesTable, RoutesTableError, parse_routes_table

from ..kubeio import KubeApiError, KubeIO
from ..metrics import (
    ROUTES_TABLE_BYTES,
    ROUTES_TABLE_DROPPED_ENTRIES,
    ROUTES_TABLE_NEAR_LIMIT,
    ROUTES_TABLE_WRITES,
    publish_routes_revision,
)
from ..settings import ObjectRef
from .fit import Fitted, fit_table
from .size import SizeCheck, check_size

log = logging.getLogger(__name__)

DATA_KEY = "routes.json"


class StoredTable(NamedTuple):
    table: RoutesTable | None  # None: no ConfigMap, no table in it, or not parseable (logged)
    annotations: dict[str, str]


@dataclass(frozen=True)
class WriteResult:
    """`table`: what the ConfigMap holds now (None when nothing could be written); `fitted`: what was left out."""

    written: bool
    size: SizeCheck
    table: RoutesTable | None
    fitted: Fitted


class RoutesConfigMap:
    """The routes ConfigMap; remembers the last revision it wrote so unchanged tables cost no API call."""

    def __init__(self, kube: KubeIO, ref: ObjectRef, *, size_limit: int) -> None:
        self.kube = kube
        self.ref = ref
        self.size_limit = size_limit
        self.written_revision: str | None = None
        self.writes = 0  # for tests and the HA check: how many times this replica wrote

    async def read(self) -> StoredTable:
        """The table currently in the ConfigMap (the "previous" entries after a restart), if parseable, and the
        ConfigMap's annotations (what else the operator keeps there), from one GET: the ConfigMap can be ~1 MB."""
        found = await self.kube.read_configmap_and_annotations(self.ref)
        if found is None:
            return StoredTable(None, {})
        data, annotations = found
        return StoredTable(self._parse(data), annotations)

    def _parse(self, data: dict[str, str]) -> RoutesTable | None:
        if DATA_KEY not in data:
            return None
        try:
            table = parse_routes_table(data[DATA_KEY])
        except RoutesTableError as exc:
            log.warning("Ignoring the existing routes table in %s: %s", self.ref, exc)
            return None
        self.written_revision = table.revision
        return table

    async def write(
        self, table: RoutesTable, *, verify: bool = False, previous: RoutesTable | None = None
    ) -> WriteResult:
        """Write `table` (fitted under the size limit) unless its revision is already there. `verify` re-reads
        the ConfigMap first (noticing a deleted or hand-edited ConfigMap) instead of trusting the remembered
        revision. `previous` is what the ConfigMap held before, reported as its content when nothing fits."""
        fitted = fit_table(table, limit=self.size_limit)
        ROUTES_TABLE_DROPPED_ENTRIES.set(fitted.dropped)
        if fitted.truncated and fitted.table.revision != self.written_revision:
            log.error("Routes table over the size limit: %s", fitted.describe())
        table = fitted.table
        payload = table.to_json()
        size = check_size(payload, limit=self.size_limit)
        ROUTES_TABLE_BYTES.set(size.size)
        ROUTES_TABLE_NEAR_LIMIT.set(1 if size.near_limit else 0)
        if size.too_large:
            log.error(
                "Not writing the routes table: %s even without any route, pending or refused entry (its "
                "fallbacks alone); the previous table stays in place",
                size.describe(),
            )
            return WriteResult(written=False, size=size, table=previous, fitted=fitted)
        if size.near_limit and not fitted.truncated:
            log.warning("%s", size.describe())
        if verify:
            data = await self.kube.read_configmap(self.ref)
            current = None if data is None else data.get(DATA_KEY)
            self.written_revision = _revision_of(current)
        if self.written_revision == table.revision:
            publish_routes_revision(table.revision)
            return WriteResult(written=False, size=size, table=table, fitted=fitted)
        try:
            await self.kube.patch_configmap_data(self.ref, {DATA_KEY: payload})
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            await self.kube.create_configmap(self.ref, {DATA_KEY: payload})
        self.written_revision = table.revision
        publish_routes_revision(table.revision)
        self.writes += 1
        ROUTES_TABLE_WRITES.inc()
        log.info("Wrote routes table %s (%d routes) to %s", table.revision[:19], len(table.routes), self.ref)
        return WriteResult(written=True, size=size, table=table, fitted=fitted)


def _revision_of(payload: str | None) -> str | None:
    if payload is None:
        return None
    try:
        return parse_routes_table(payload).revision
    except RoutesTableError:
        return None

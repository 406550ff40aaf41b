"""Watching the routes ConfigMap through the Kubernetes API (`--routes-configmap NS/NAME`).

Faster than the mounted file (the kubelet syncs mounts only every minute or so). The list+watch, the
credentials (in-cluster service account, else `$KUBECONFIG` / `~/.kube/config`, re-read after a 401 or a
broken connection) and the 410-relist come from the shared client, `sentryroute.kubeapi`. The forwarder's
RBAC is get/list/watch on this one ConfigMap, so every request names it by fieldSelector.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sentryroute.kubeapi import KubeClient, ListWatch, WatchEventType, configmap_path
from sentryroute_forwarder.config import ObjectRef
from sentryroute_forwarder.table.loader import TableLoader

__all__ = ["DATA_KEY", "RoutesConfigMapWatcher"]

log = logging.getLogger(__name__)

#: The ConfigMap data key holding the table (SPEC §1).
DATA_KEY = "routes.json"


class RoutesConfigMapWatcher:
    def __init__(
        self, ref: ObjectRef, *, loader: TableLoader, retry_delay: float = 2.0, watch_timeout: int = 300
    ) -> None:
        self._ref = ref
        self._loader = loader
        self._retry_delay = retry_delay
        self._watch_timeout = watch_timeout
        self._origin = f"ConfigMap {ref}"
        self._problem: str | None = None  # the last problem logged, so a lasting one is logged once

    async def run(self) -> None:
        """List and watch until cancelled, reconnecting after errors (the current table stays in use)."""
        async with KubeClient() as client:
            watch = ListWatch(
                client,
                configmap_path(self._ref.namespace),
                field_selector=f"metadata.name={self._ref.name}",
                timeout_seconds=self._watch_timeout,
                retry_delay=self._retry_delay,
                on_problem=self._report,
            )
            async for event in watch.events():
                if event.type == WatchEventType.LISTED:
                    ours = [obj for obj in event.objects if self._is_ours(obj)]
                    if ours:
                        self._apply(ours[0])
                    else:
                        self._report(f"{self._origin} does not exist yet")
                elif not self._is_ours(event.object):
                    continue
                elif event.type == WatchEventType.DELETED:
                    self._report(f"{self._origin} was deleted; keeping the current table")
                else:
                    self._apply(event.object)

    def _is_ours(self, obj: Mapping[str, Any]) -> bool:
        # Selectors are filters for the server's benefit; the name is checked here too.
        return bool((obj.get("metadata") or {}).get("name") == self._ref.name)

    def _apply(self, configmap: Mapping[str, Any]) -> None:
        raw = (configmap.get("data") or {}).get(DATA_KEY)
        if not isinstance(raw, str):
            self._report(f"{self._origin} has no data key {DATA_KEY!r}")
            return
        self._problem = None
        self._loader.offer(raw.encode("utf-8"), origin=self._origin)

    def _report(self, problem: str) -> None:
        if problem != self._problem:
            state = "keeping the current table" if self._loader.table is not None else "not ready until it is"
            log.warning("%s; %s", problem, state)
            self._problem = problem

"""A watch on the one report ConfigMap (SPEC §4), namespaced and by name.

kopf watches a resource kind cluster-wide in a cluster-wide operator; for ConfigMaps that would mean reading
every ConfigMap of the cluster (and RBAC to do so) for the sake of one object. This watch needs `list`/`watch`
on ConfigMaps in the operator's own namespace only, through the shared async client (`sentryroute.kubeapi`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sentryroute.kubeapi import KubeClient, ListWatch, WatchEventType, configmap_path

from ..settings import ObjectRef

log = logging.getLogger(__name__)

#: Server-side timeout of one watch request; the watch then resumes where it was.
WATCH_TIMEOUT = 30


class ReportWatcher:
    def __init__(
        self, client: KubeClient, ref: ObjectRef, *, on_change: Callable[[dict[str, str] | None], None]
    ) -> None:
        """`on_change` gets the ConfigMap's data on every change, None when it is deleted or absent."""
        self._client = client
        self._ref = ref
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"watch {self._ref}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        watch = ListWatch(
            self._client,
            configmap_path(self._ref.namespace),
            field_selector=f"metadata.name={self._ref.name}",
            timeout_seconds=WATCH_TIMEOUT,
            retry_delay=1.0,
            on_problem=lambda problem: log.warning("Watching the report ConfigMap %s: %s", self._ref, problem),
        )
        async for event in watch.events():
            if event.type == WatchEventType.LISTED:
                ours = [obj for obj in event.objects if self._is_ours(obj)]
                self._on_change(_data(ours[0]) if ours else None)
            elif self._is_ours(event.object):
                self._on_change(None if event.type == WatchEventType.DELETED else _data(event.object))

    def _is_ours(self, obj: Mapping[str, Any]) -> bool:
        return bool((obj.get("metadata") or {}).get("name") == self._ref.name)


def _data(obj: Mapping[str, Any]) -> dict[str, str]:
    data = obj.get("data")
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, Mapping) else {}

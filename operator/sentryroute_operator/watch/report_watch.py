"""A watch on the one report ConfigMap (SPEC §4), namespaced and by name.

kopf watches a resource kind cluster-wide in a cluster-wide operator; for ConfigMaps that would mean reading
every ConfigMap of the cluster (and RBAC to do so) for the sake of one object. This watch needs `list`/`watch`
on ConfigMaps in the operator's own namespace only. It runs the official client's blocking watch in a thread
and hands every new state of the ConfigMap to the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import kubernetes

from ..settings import ObjectRef

log = logging.getLogger(__name__)

#: Server-side timeout of one watch request: after `stop()`, the thread ends within this time on its own.
WATCH_TIMEOUT = 30


class ReportWatcher:
    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        ref: ObjectRef,
        *,
        on_change: Callable[[dict[str, str] | None], None],
    ) -> None:
        self._core = core
        self._ref = ref
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start watching; `on_change` runs on the calling thread's event loop (None: the ConfigMap is gone)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"watch {self._ref}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop delivering changes now; the thread itself ends when its current watch request does."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch_once()
            except Exception as exc:  # the API server restarted, a network blip: re-watch after a pause
                if not self._stop.is_set():
                    log.warning("Watching %s failed, retrying: %s", self._ref, exc)
                    self._stop.wait(1.0)

    def _watch_once(self) -> None:
        stream = kubernetes.watch.Watch().stream(
            self._core.list_namespaced_config_map,
            self._ref.namespace,
            field_selector=f"metadata.name={self._ref.name}",
            timeout_seconds=WATCH_TIMEOUT,
        )
        for event in stream:
            if self._stop.is_set():
                return
            obj: Any = event["object"]
            data = None if event["type"] == "DELETED" else dict(obj.data or {})
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver, data)
            except RuntimeError:  # the event loop is gone: the operator has stopped
                return

    def _deliver(self, data: dict[str, str] | None) -> None:
        if not self._stop.is_set():
            self._on_change(data)

"""The Pod watch behind `--namespace-from peer`: list/watch every Pod, keep only what the index needs.

Cluster-wide (`/api/v1/pods`, through the shared `sentryroute.kubeapi` list+watch): the forwarder's RBAC is
list/watch on pods. What is kept per pod is `IndexedPod` (uid, namespace, canonical `status.podIPs`, trusted
relay or not). Pods that cannot be told apart by address are left out on purpose: `hostNetwork` pods (their
address is the node's) and pods that have finished (`Succeeded`/`Failed`: their address is free for reuse).
A terminating pod stays until its deletion arrives — it may still flush its telemetry.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from sentryroute.kubeapi import KubeClient, ListWatch, WatchEventType
from sentryroute.selectors import LabelSelector
from sentryroute_forwarder.peers.address import canonical_ip
from sentryroute_forwarder.peers.index import IndexedPod, PeerIndex

__all__ = ["PodWatcher", "indexed_pod"]

log = logging.getLogger(__name__)

_FINISHED = frozenset({"Succeeded", "Failed"})
PODS = "/api/v1/pods"
#: Pods per list request: a page of real pods is ~5 KB of JSON each and ~4x that parsed, so 250 of them are
#: ~7 MB while they are read — also when a relist (after 410 Gone) happens under full load.
LIST_PAGE = 100


def indexed_pod(obj: Mapping[str, Any], relays: LabelSelector | None) -> IndexedPod | None:
    """What the index keeps of a Pod object; None for a pod that has no address of its own."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    uid, namespace = metadata.get("uid"), metadata.get("namespace")
    if not isinstance(uid, str) or not isinstance(namespace, str):
        return None
    if spec.get("hostNetwork") or status.get("phase") in _FINISHED:
        return None
    texts = [entry.get("ip") for entry in status.get("podIPs") or () if isinstance(entry, dict)]
    if not texts and status.get("podIP"):
        texts = [status.get("podIP")]
    addresses = tuple(sorted({ip for text in texts if isinstance(text, str) and (ip := canonical_ip(text))}))
    if not addresses:
        return None
    labels = metadata.get("labels") or {}
    relay = relays is not None and relays.matches(labels if isinstance(labels, dict) else {})
    # One copy of each namespace's name for all its pods (each parsed listing makes a new one per pod).
    return IndexedPod(uid=uid, namespace=sys.intern(namespace), addresses=addresses, relay=relay)


class PodWatcher:
    def __init__(
        self,
        index: PeerIndex,
        *,
        relays: LabelSelector | None,
        on_change: Callable[[], None] = lambda: None,
        retry_delay: float = 2.0,
        watch_timeout: int = 300,
    ) -> None:
        self._index = index
        self._relays = relays
        self._on_change = on_change
        self._retry_delay = retry_delay
        self._watch_timeout = watch_timeout
        self._problem: str | None = None

    async def run(self) -> None:
        """List and watch until cancelled; after an error the pods known so far stay in use."""
        async with KubeClient() as client:
            watch = ListWatch(
                client,
                PODS,
                timeout_seconds=self._watch_timeout,
                retry_delay=self._retry_delay,
                on_problem=self._on_problem,
                keep=lambda obj: indexed_pod(obj, self._relays),
                page_size=LIST_PAGE,
            )
            async for event in watch.events():
                if event.type == WatchEventType.LISTED:
                    self._on_list(event.objects)
                else:
                    self._on_event(event.type, event.object)
                self._on_change()

    def _on_list(self, pods: tuple[IndexedPod, ...]) -> None:
        first = not self._index.synced
        self._index.replace_all(pods)
        self._problem = None
        if first:
            log.info("pod index ready: %d pods with addresses of their own", len(self._index))

    def _on_event(self, kind: WatchEventType, obj: Mapping[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if not isinstance(uid, str):
            return
        pod = None if kind == WatchEventType.DELETED else indexed_pod(obj, self._relays)
        if pod is None:
            self._index.remove(uid)  # deleted, finished, or no address (any more)
        else:
            self._index.upsert(pod)

    def _on_problem(self, problem: str) -> None:
        if problem != self._problem:
            state = "keeping the pods known so far" if self._index.synced else "not ready until they are listed"
            log.warning("%s (--namespace-from peer needs list/watch on pods); %s", problem, state)
            self._problem = problem

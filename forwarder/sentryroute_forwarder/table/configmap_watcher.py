"""Watching the routes ConfigMap through the Kubernetes API (`--routes-configmap NS/NAME`).

Faster than the mounted file (the kubelet syncs mounts only every minute or so). The credentials come
from the standard resolution — in-cluster service account, else `$KUBECONFIG` / `~/.kube/config` — and
are re-read on every reconnect, so rotated service-account tokens are picked up. The stream itself is
plain aiohttp: list once, then watch from the list's resourceVersion, relisting on `410 Gone`. The
forwarder's RBAC is get/list/watch on this one ConfigMap, so every request names it by fieldSelector.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from sentryroute_forwarder.config import ObjectRef
from sentryroute_forwarder.table.loader import TableLoader

__all__ = ["DATA_KEY", "ApiAccess", "RoutesConfigMapWatcher", "load_api_access"]

log = logging.getLogger(__name__)

#: The ConfigMap data key holding the table (SPEC §1).
DATA_KEY = "routes.json"
_MAX_EVENT_BYTES = 8 * 1024 * 1024  # one watch event line; a ConfigMap is at most 1 MiB


class _Gone(Exception):
    """The resourceVersion is too old (410): list again."""


@dataclass(frozen=True, slots=True)
class ApiAccess:
    base_url: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | None


def load_api_access() -> ApiAccess:
    """Resolve the API server and credentials the standard way (kubernetes client's loaders)."""
    from kubernetes import client, config  # only a forwarder given --routes-configmap pays for this import

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    headers = {"Accept": "application/json"}
    authorization = configuration.get_api_key_with_prefix("authorization")
    if authorization:
        headers["Authorization"] = authorization
    context: ssl.SSLContext | None = None
    if configuration.host.startswith("https"):
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return ApiAccess(configuration.host.rstrip("/"), headers, context)


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
        """List and watch until cancelled, reconnecting after errors."""
        while True:
            try:
                access = await asyncio.to_thread(load_api_access)
                await self._list_and_watch(access)
            except asyncio.CancelledError:
                raise
            except _Gone:
                continue
            except Exception as exc:  # any failure: keep the current table, reconnect
                self._report(f"cannot watch {self._origin}: {type(exc).__name__}: {str(exc)[:200]}")
            await asyncio.sleep(self._retry_delay)

    async def _list_and_watch(self, access: ApiAccess) -> None:
        path = f"/api/v1/namespaces/{quote(self._ref.namespace, safe='')}/configmaps"
        selector = f"metadata.name={self._ref.name}"
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=self._watch_timeout + 30)
        async with aiohttp.ClientSession(base_url=access.base_url, headers=access.headers, timeout=timeout) as session:
            async with session.get(path, params={"fieldSelector": selector}, ssl=access.ssl_context or True) as resp:
                resp.raise_for_status()
                listing = await resp.json()
            version = str(listing.get("metadata", {}).get("resourceVersion", ""))
            items = [item for item in listing.get("items") or [] if self._is_ours(item)]
            if items:
                self._apply(items[0])
            else:
                self._report(f"{self._origin} does not exist yet")
            while True:  # each watch ends after timeoutSeconds; continue from the last version seen
                params = {
                    "watch": "true",
                    "fieldSelector": selector,
                    "timeoutSeconds": str(self._watch_timeout),
                    "allowWatchBookmarks": "true",
                }
                if version:
                    params["resourceVersion"] = version
                started = asyncio.get_running_loop().time()
                async with session.get(path, params=params, ssl=access.ssl_context or True) as resp:
                    if resp.status == 410:
                        raise _Gone
                    resp.raise_for_status()
                    async for event in _events(resp):
                        version = self._handle(event) or version
                if asyncio.get_running_loop().time() - started < 1.0:
                    await asyncio.sleep(self._retry_delay)  # a server ending watches at once must not spin us

    def _handle(self, event: dict[str, Any]) -> str | None:
        """Apply one watch event; returns the resourceVersion it carries."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"):
            raise RuntimeError(f"unexpected watch event type {str(kind)[:40]!r}")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise RuntimeError(f"watch error: {str(obj.get('message', obj))[:200]}")
        if kind in ("ADDED", "MODIFIED") and self._is_ours(obj):
            self._apply(obj)
        elif kind == "DELETED" and self._is_ours(obj):
            self._report(f"{self._origin} was deleted; keeping the current table")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return str(version) if version else None

    def _is_ours(self, obj: dict[str, Any]) -> bool:
        # Selectors are filters for the server's benefit; the name is checked here too.
        return bool((obj.get("metadata") or {}).get("name") == self._ref.name)

    def _apply(self, configmap: dict[str, Any]) -> None:
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


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The JSON events of a watch stream, one per line (lines can be large: split by hand)."""
    pending = b""
    async for chunk in resp.content.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
        if len(pending) > _MAX_EVENT_BYTES:
            raise RuntimeError("watch event larger than a ConfigMap can be")
    if pending.strip():
        yield json.loads(pending)

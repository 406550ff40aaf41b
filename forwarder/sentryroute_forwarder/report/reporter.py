"""Reporting held values to the operator (SPEC §4, `--report-configmap NS/NAME`).

Every `--report-interval` the values the queue holds for a reason the operator does not already know (not
`pending`) are JSON-merge-patched into the report ConfigMap. The forwarder's RBAC is `get` and `patch` on that
one ConfigMap, so it never creates it: the operator does, and removes the entries it has handled. Values are
client-supplied, so they only ever go into JSON bodies, never into a URL, and log lines quote them. Each entry
says the namespace the forwarder determined and how (`namespaceFrom`), so the operator scopes what it creates.
The ConfigMap is bounded in keys and bytes; values longer than `MAX_REPORTED_VALUE` never get here (the router
drops them).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sentryroute.kubeapi import KubeApiError, KubeClient, configmap_path
from sentryroute.routes import MAX_REPORTED_ATTRIBUTE, MAX_REPORTED_VALUE, canonical_json, report_key
from sentryroute_forwarder.config import ObjectRef
from sentryroute_forwarder.log_throttle import LogThrottle
from sentryroute_forwarder.logs import quoted

__all__ = ["MAX_BYTES", "MAX_KEYS", "HeldValuesReporter"]

log = logging.getLogger(__name__)

#: Most data keys in the report ConfigMap (SPEC §4); new values wait while it is full.
MAX_KEYS = 1000
#: Most bytes of data (keys and values) in the report ConfigMap (SPEC §4); new values wait beyond it.
MAX_BYTES = 256 * 1024

#: (attribute, value, reason, namespace) of held data.
HeldValues = Callable[[], list[tuple[str, str, str, str | None]]]


class HeldValuesReporter:
    def __init__(
        self,
        ref: ObjectRef,
        *,
        held_values: HeldValues,
        interval: float,
        refresh: float = 60.0,
        log_interval: float = 60.0,
        max_keys: int = MAX_KEYS,
        max_bytes: int = MAX_BYTES,
        namespace_from: str = "attribute",
    ) -> None:
        """`refresh`: how often an unchanged entry's `lastSeen` is rewritten; `log_interval`: how often one
        kind of lasting problem is logged."""
        self._ref = ref
        self._held_values = held_values
        self._interval = interval
        self._refresh = refresh
        self._max_keys = max_keys
        self._max_bytes = max_bytes
        self._namespace_from = namespace_from
        self._path = configmap_path(ref.namespace, ref.name)
        self._written: dict[str, tuple[str, float]] = {}  # key → (reason, monotonic time) of our last write
        self._log_throttle = LogThrottle(interval=log_interval, capacity=16)

    async def run(self) -> None:
        """Report every interval until cancelled; failures are logged (throttled) and retried next interval."""
        async with KubeClient() as client:
            while True:
                await asyncio.sleep(self._interval)
                try:
                    await self.report_once(client)
                except KubeApiError as exc:
                    detail = _answered(exc)
                    self._warn("failed", "cannot report held values to ConfigMap %s: %s", self._ref, detail[:200])

    async def report_once(self, client: KubeClient) -> None:
        """Patch in the held values that are new, changed reason, or were last written over `refresh` ago."""
        held = [entry for entry in self._held_values() if entry[2] != "pending" and _reportable(entry[0], entry[1])]
        held_keys = {report_key(attribute, value, namespace) for attribute, value, _, namespace in held}
        self._written = {key: written for key, written in self._written.items() if key in held_keys}
        if not held:
            return
        configmap = await client.get(self._path)
        raw_data = configmap.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        now = time.monotonic()
        count, waiting = len(data), []
        size = sum(len(k) + len(str(v).encode()) for k, v in data.items())
        patch: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for attribute, value, reason, namespace in held:
            key = report_key(attribute, value, namespace)
            entry = {"attribute": attribute, "value": value, "reason": reason, "lastSeen": _rfc3339_now()}
            entry["namespaceFrom"] = self._namespace_from
            if namespace is not None:
                entry["namespace"] = namespace
            text = canonical_json(entry)
            if key not in data:
                grown = size + len(key) + len(text.encode())
                if count >= self._max_keys or grown > self._max_bytes:
                    waiting.append(value)
                    continue
                count, size = count + 1, grown
            elif _reason_of(data[key]) == reason and self._recently_written(key, reason, now):
                continue  # unchanged: lastSeen is rewritten only every `refresh`
            patch[key] = text
            reasons[key] = reason
        if waiting:
            self._warn(
                "full",
                "report ConfigMap %s is full (%d keys) or at its byte bound (%d of %d bytes): "
                "%d held values not reported yet, e.g. %s",
                self._ref,
                len(data),
                size,
                self._max_bytes,
                len(waiting),
                quoted(waiting[0]),
            )
        if patch:
            await client.merge_patch(self._path, {"data": patch})
            self._written.update((key, (reason, now)) for key, reason in reasons.items())

    def _recently_written(self, key: str, reason: str, now: float) -> bool:
        written = self._written.get(key)
        return written is not None and written[0] == reason and now - written[1] < self._refresh

    def _warn(self, kind: str, message: str, *args: object) -> None:
        if self._log_throttle.add(kind, 1, now=time.monotonic()):
            log.warning(message, *args)


def _reportable(attribute: str, value: str) -> bool:
    """Within the report channel's bounds (SPEC §4); the router already drops longer held values."""
    return 0 < len(attribute) <= MAX_REPORTED_ATTRIBUTE and len(value) <= MAX_REPORTED_VALUE


def _reason_of(entry: Any) -> str | None:
    try:
        parsed = json.loads(entry)
    except (TypeError, ValueError):
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason if isinstance(reason, str) else None


def _rfc3339_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _answered(exc: KubeApiError) -> str:
    """ "GET answered 404 (hint)" for an error status, else the client's own description."""
    if exc.status is None:
        return str(exc)
    method = str(exc).split(" ", 1)[0]
    return f"{method} answered {exc.status}{_hint(exc.status)}"


def _hint(status: int) -> str:
    if status == 404:
        return " (not found: the operator creates it)"
    if status in (401, 403):
        return " (the forwarder needs get and patch on it)"
    return ""

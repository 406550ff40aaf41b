"""List, then watch from the list's resourceVersion; relist on 410 Gone; reconnect after errors.

`ListWatch.events()` yields a `LISTED` event with every current object after each (re)list — the consumer
replaces what it knew; with `keep`, what it keeps of each, read page by page (`page_size`) so the whole
list is never in memory at once — and then `ADDED` / `MODIFIED` / `DELETED` per change. Bookmarks only move the
resume point. Errors (the API server restarting, a network blip, missing RBAC) go to `on_problem` and the
list+watch starts over after `retry_delay`; the generator itself never ends until it is closed or cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .client import KubeApiError, KubeClient, selector_params
from .http import Response

__all__ = ["ListWatch", "WatchEvent", "WatchEventType"]

log = logging.getLogger(__name__)

_MAX_EVENT_BYTES = 8 * 1024 * 1024  # one watch event line; a ConfigMap is at most 1 MiB


class WatchEventType(StrEnum):
    LISTED = "LISTED"  # a (re)list: `objects` is the complete current set
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class WatchEvent:
    type: WatchEventType
    object: Mapping[str, Any] = field(default_factory=dict)  # ADDED / MODIFIED / DELETED
    objects: tuple[Any, ...] = ()  # LISTED: the objects, or what ListWatch's `keep` made of them


class _Gone(Exception):
    """The resourceVersion is too old (410): list again."""


class ListWatch:
    def __init__(
        self,
        client: KubeClient,
        collection_path: str,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        retry_delay: float = 2.0,
        on_problem: Callable[[str], None] | None = None,
        keep: Callable[[dict[str, Any]], Any] | None = None,
        page_size: int | None = None,
    ) -> None:
        """`timeout_seconds`: how long the server keeps one watch request open (it is then resumed).
        `keep`: what a listing keeps of each object (None: leave it out); `page_size`: items per list request."""
        self._client = client
        self._path = collection_path
        self._selector_params = selector_params(field_selector, label_selector)
        self._field_selector, self._label_selector = field_selector, label_selector
        self._timeout = timeout_seconds
        self._retry_delay = retry_delay
        self._on_problem = on_problem or (lambda problem: log.warning("%s", problem))
        self._keep = keep
        self._page_size = page_size

    async def events(self) -> AsyncGenerator[WatchEvent, None]:
        while True:
            try:
                objects, version = await self._list()
                yield WatchEvent(WatchEventType.LISTED, objects=objects)
                del objects  # the consumer has what it needs of them
                while True:  # each watch request ends after timeoutSeconds; resume from the last version seen
                    started = asyncio.get_running_loop().time()
                    async for event, resumed_at in self._watch(version):
                        version = resumed_at or version
                        if event is not None:
                            yield event
                    if asyncio.get_running_loop().time() - started < 1.0:
                        await asyncio.sleep(self._retry_delay)  # a server ending watches at once must not spin us
            except _Gone:
                continue
            except KubeApiError as exc:
                self._on_problem(f"cannot watch {self._path}: {exc}")
            await asyncio.sleep(self._retry_delay)

    async def _list(self) -> tuple[tuple[Any, ...], str]:
        kept: list[Any] = []
        version = ""
        async for items, page_version in self._client.list_pages(
            self._path, field_selector=self._field_selector, label_selector=self._label_selector, limit=self._page_size
        ):
            if self._keep is None:
                kept += items
            else:
                kept += [found for item in items if (found := self._keep(item)) is not None]
            version = page_version
            del items  # the page goes before the next one is read
        return tuple(kept), version

    async def _watch(self, version: str) -> AsyncIterator[tuple[WatchEvent | None, str | None]]:
        params = {
            **self._selector_params,
            "watch": "true",
            "timeoutSeconds": str(self._timeout),
            "allowWatchBookmarks": "true",
        }
        if version:
            params["resourceVersion"] = version
        try:
            async with self._client.stream(self._path, params, read_timeout=self._timeout + 30) as resp:
                async for raw in _lines(resp):
                    yield _event(raw)
        except KubeApiError as exc:
            if exc.status == 410:
                raise _Gone from None
            raise


def _event(raw: Mapping[str, Any]) -> tuple[WatchEvent | None, str | None]:
    """(the event to deliver or None for a bookmark, the resourceVersion it carries)."""
    kind, obj = raw.get("type"), raw.get("object")
    obj = obj if isinstance(obj, dict) else {}
    if kind == "ERROR":
        if obj.get("code") == 410:
            raise _Gone
        raise KubeApiError(f"watch error: {str(obj.get('message', obj))[:200]}", status=obj.get("code"))
    version = (obj.get("metadata") or {}).get("resourceVersion")
    version = str(version) if version else None
    if kind == "BOOKMARK":
        return None, version
    try:
        event_type = WatchEventType(str(kind))
    except ValueError:
        raise KubeApiError(f"unexpected watch event type {str(kind)[:40]!r}") from None
    if event_type == WatchEventType.LISTED:
        raise KubeApiError("unexpected watch event type 'LISTED'")
    return WatchEvent(event_type, object=obj), version


async def _lines(resp: Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON events of a watch stream, one per line (lines can be large: split by hand)."""
    pending = b""
    try:
        async for chunk in resp.chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield _json_line(line)
            if len(pending) > _MAX_EVENT_BYTES:
                raise KubeApiError("watch event larger than any object can be")
    except OSError as exc:  # HttpError, TimeoutError (no event, not even a bookmark, for too long)
        raise KubeApiError(f"watch stream broke: {type(exc).__name__}") from None
    if pending.strip():
        yield _json_line(pending)


def _json_line(line: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except ValueError:
        raise KubeApiError("a watch event is not JSON") from None
    if not isinstance(parsed, dict):
        raise KubeApiError("a watch event is not a JSON object")
    return parsed

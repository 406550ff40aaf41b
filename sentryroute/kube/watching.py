"""Watch streams over the store's event log: the initial state, resuming at a resourceVersion, selectors.

kopf lists, then watches from the list's resourceVersion and relists on 410 Gone; client-go can ask for the
initial state inside the watch (`sendInitialEvents`, ended by a bookmark). Both work here as on a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import kmock

from sentryroute.kube.objects import ApiError, api_version_of
from sentryroute.kube.store import ObjectStore, WatchEvent

__all__ = ["watch_events"]

Selected = Callable[[Mapping[str, Any]], bool]


async def watch_events(
    store: ObjectStore,
    resource: kmock.resource,
    *,
    namespace: str | None,
    selected: Selected,
    since: int | None,
    send_initial_events: bool = False,
    lifetime: float | None = None,
) -> AsyncIterator[Any]:
    """Watch events as kmock stream chunks, until `lifetime` seconds pass or the store stops watches.

    `since=None` (no resourceVersion, or "0") starts with the current objects as ADDED events, as does
    `send_initial_events`, which then marks their end with a bookmark.
    """
    yield b""  # start the response now: kmock sends the headers with the first chunk
    loop = asyncio.get_running_loop()
    deadline = None if lifetime is None else loop.time() + lifetime
    if since is not None and not store.forgotten_revision <= since <= store.revision:
        # Too old (dropped from the log), or from the future (a restarted emulator): either way, relist.
        expired = ApiError(
            410, "Expired", f"resource version {since} is not in [{store.forgotten_revision}, {store.revision}]"
        )
        yield {"type": "ERROR", "object": expired.status()}
        return
    last = since if since is not None and not send_initial_events else store.revision
    if since is None or send_initial_events:
        for obj in [obj for obj in store.list_objects(resource, namespace) if selected(obj)]:
            yield {"type": "ADDED", "object": obj}
    if send_initial_events:
        yield _initial_events_end(store, resource, last)
    while not store.closing:
        fresh = store.events_since(last)
        if fresh:
            last = fresh[-1].revision
            for event in fresh:
                if event.resource == resource and (translated := _translate(event, selected)) is not None:
                    yield translated
            continue
        changed = store.changed  # taken after the last check with no await in between: no write is missed
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            return


def _translate(event: WatchEvent, selected: Selected) -> dict[str, Any] | None:
    """A write as this watcher sees it: objects entering or leaving its selector are ADDED or DELETED."""
    now_selected = selected(event.obj)
    before_selected = event.old is not None and selected(event.old)
    if event.type == "MODIFIED" and now_selected != before_selected:
        return {"type": "ADDED" if now_selected else "DELETED", "object": event.obj}
    if now_selected:
        return {"type": event.type, "object": event.obj}
    return None


def _initial_events_end(store: ObjectStore, resource: kmock.resource, revision: int) -> dict[str, Any]:
    annotations = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {
            "apiVersion": api_version_of(resource),
            "kind": store.info(resource).kind,
            "metadata": {"resourceVersion": str(revision), "annotations": annotations},
        },
    }

"""The shared Kubernetes client (`sentryroute.kubeapi`) against the emulated API: calls, errors, list+watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sentryroute.kube import KubeEmulator
from sentryroute.kube.emulator import RealisticEmulator
from sentryroute.kubeapi import KubeApiError, KubeClient, ListWatch, WatchEvent, WatchEventType, configmap_path
from tests.forwarder.support import wait_until

NS = "apps"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data}


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeEmulator]:
    # A short event log: a watch resuming from before it gets 410 Gone, as from a real API server.
    async with KubeEmulator(kubeconfig_path=tmp_path / "kubeconfig", emulator=RealisticEmulator(events_kept=3)) as k:
        yield k


async def test_get_create_merge_patch_and_errors(kube: KubeEmulator) -> None:
    async with KubeClient(kubeconfig=str(kube.kubeconfig_path)) as client:
        assert await client.get_or_none(configmap_path(NS, "a")) is None
        await client.create(configmap_path(NS), configmap("a", x="1", y="2"))
        with pytest.raises(KubeApiError) as conflict:
            await client.create(configmap_path(NS), configmap("a"))
        assert conflict.value.status == 409 and "already exists" in str(conflict.value)
        await client.merge_patch(configmap_path(NS, "a"), {"data": {"x": None, "z": "3"}})
        got = await client.get(configmap_path(NS, "a"))
        assert got["data"] == {"y": "2", "z": "3"}
        items, version = await client.list(configmap_path(NS), field_selector="metadata.name=a")
        assert [i["metadata"]["name"] for i in items] == ["a"] and version


async def test_no_server_is_one_error_type() -> None:
    with pytest.raises(KubeApiError) as missing:
        async with KubeClient(kubeconfig="/nonexistent/kubeconfig") as client:
            await client.get(configmap_path(NS, "a"))
    assert missing.value.status is None and "credentials" in str(missing.value)


async def test_list_watch_follows_changes_and_relists_after_410(kube: KubeEmulator) -> None:
    kube.apply(configmap("target", v="1"), namespace=NS)
    events: list[WatchEvent] = []
    problems: list[str] = []
    async with KubeClient(kubeconfig=str(kube.kubeconfig_path)) as client:
        watch = ListWatch(
            client,
            configmap_path(NS),
            field_selector="metadata.name=target",
            timeout_seconds=1,
            retry_delay=0.05,
            on_problem=problems.append,
        )

        async def collect() -> None:
            async for event in watch.events():
                events.append(event)

        async def until(check: Any, what: str) -> None:
            await wait_until(check, within=30, what=f"{what} ({events}, {problems})")

        task = asyncio.create_task(collect())
        try:
            await until(lambda: events, "the first list")
            assert events[0].type == WatchEventType.LISTED
            assert [o["data"] for o in events[0].objects] == [{"v": "1"}]

            kube.apply(configmap("target", v="2"), namespace=NS)
            await until(lambda: any(e.type == WatchEventType.MODIFIED for e in events), "the change")
            assert [e.object["data"] for e in events if e.type == WatchEventType.MODIFIED] == [{"v": "2"}]

            # Writes the selector filters out push the watch's version out of the event log: 410, relist.
            for i in range(5):
                kube.apply(configmap(f"other-{i}"), namespace=NS)
            await until(lambda: sum(e.type == WatchEventType.LISTED for e in events) >= 2, "the relist")
            assert [o["data"] for o in events[-1].objects] == [{"v": "2"}]
            assert not problems  # a 410 is routine, not a problem

            await client.request("DELETE", configmap_path(NS, "target"))
            await until(lambda: events[-1].type == WatchEventType.DELETED, "the deletion")
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_list_pages_and_keep_read_a_listing_page_by_page(kube: KubeEmulator) -> None:
    for i in range(7):
        kube.apply(configmap(f"cm-{i}", n=str(i)), namespace=NS)
    async with KubeClient(kubeconfig=str(kube.kubeconfig_path)) as client:
        pages = [(page, version) async for page, version in client.list_pages(configmap_path(NS), limit=3)]
        assert [len(page) for page, _ in pages] == [3, 3, 1]
        assert len({version for _, version in pages}) == 1  # one snapshot, one resourceVersion
        assert [i["metadata"]["name"] for page, _ in pages for i in page] == [f"cm-{i}" for i in range(7)]

        # The listing keeps what `keep` returns and leaves out its Nones; the watch then sees later changes.
        watch = ListWatch(
            client,
            configmap_path(NS),
            keep=lambda obj: None if obj["data"]["n"] == "4" else int(obj["data"]["n"]),
            page_size=2,
            timeout_seconds=5,
        )
        events = watch.events()
        try:
            listed = await anext(events)
            assert listed.type == WatchEventType.LISTED and listed.objects == (0, 1, 2, 3, 5, 6)
            kube.apply(configmap("cm-7", n="7"), namespace=NS)
            added = await asyncio.wait_for(anext(events), 30)
            assert added.type == WatchEventType.ADDED and added.object["data"] == {"n": "7"}
        finally:
            await events.aclose()

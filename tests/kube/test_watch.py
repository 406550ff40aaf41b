"""Watch streams: selectors with transitions, resuming from a resourceVersion, server-side timeouts, 410 Gone."""

from __future__ import annotations

import json
import threading
import urllib.request

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from sentryroute.kube import KubeEmulator, RealisticEmulator
from tests.kube.helpers import CoreApi


def collect(core: CoreApi, **kwargs) -> list[tuple[str, str]]:
    """(type, name) of every event until the server ends the stream (timeoutSeconds)."""
    stream = kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default", **kwargs)
    return [(event["type"], event["object"].metadata.name) for event in stream]


def test_watch_ends_cleanly_at_timeout_seconds(core: CoreApi):
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert collect(core, timeout_seconds=1) == [("ADDED", "a")]


def test_watch_resumes_from_a_resource_version_without_replay(core: CoreApi):
    core.create_namespaced_config_map("default", {"metadata": {"name": "old"}})
    since = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "new"}})
    core.patch_namespaced_config_map("old", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("new", "default")
    assert collect(core, resource_version=since, timeout_seconds=1) == [
        ("ADDED", "new"),
        ("MODIFIED", "old"),
        ("DELETED", "new"),
    ]


def test_label_selector_watch_sees_objects_enter_and_leave(core: CoreApi):
    since = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "x", "labels": {"tier": "db"}}})
    core.patch_namespaced_config_map("x", "default", {"metadata": {"labels": {"tier": "web"}}})
    core.patch_namespaced_config_map("x", "default", {"data": {"k": "v"}})
    core.patch_namespaced_config_map("x", "default", {"metadata": {"labels": {"tier": "db"}}})
    events = collect(core, resource_version=since, label_selector="tier=web", timeout_seconds=1)
    assert events == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]


def test_live_events_arrive_while_watching(core: CoreApi):
    seen: list[tuple[str, str]] = []
    since = core.list_namespaced_config_map("default").metadata.resource_version  # no race with the writes below

    def watch() -> None:
        watcher = kubernetes.watch.Watch()
        stream = watcher.stream(core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=20)
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                watcher.stop()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    core.create_namespaced_config_map("default", {"metadata": {"name": "live"}})
    core.delete_namespaced_config_map("live", "default")
    thread.join(timeout=30)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_forgotten_resource_versions_are_410_gone():
    emulator = KubeEmulator(emulator=RealisticEmulator(events_kept=2))
    with emulator.running_in_thread() as kube, kube.api_client() as api:
        core: CoreApi = kubernetes.client.CoreV1Api(api)
        since = core.list_namespaced_config_map("default").metadata.resource_version
        for name in "abc":
            core.create_namespaced_config_map("default", {"metadata": {"name": name}})
        with pytest.raises(ApiException) as gone:
            collect(core, resource_version=since, timeout_seconds=1)
        assert gone.value.status == 410


def test_send_initial_events_ends_with_a_bookmark(kube: KubeEmulator):
    """client-go's streaming lists (WatchListClient): the state, a bookmark marking its end, then changes."""
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    query = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    url = f"{kube.url}/api/v1/namespaces/default/configmaps?{query}&timeoutSeconds=1"
    with urllib.request.urlopen(url, timeout=10) as stream:
        events = [json.loads(line) for line in stream.read().splitlines() if line.strip()]
    assert [event["type"] for event in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_future_resource_versions_are_410_gone_too(core: CoreApi):
    """An operator that outlived a restarted emulator relists instead of waiting for revisions to catch up."""
    since = int(core.list_namespaced_config_map("default").metadata.resource_version) + 1000
    with pytest.raises(ApiException) as gone:
        collect(core, resource_version=str(since), timeout_seconds=1)
    assert gone.value.status == 410


def test_namespaces_are_watched_and_selected_by_label(core: CoreApi):
    """The namespaces resource itself (URLs kmock misparses, re-routed by the emulator) keeps its query string:
    `?watch=true` streams events and `?labelSelector=` filters, as the operator's Namespace index needs."""
    since = core.list_namespace().metadata.resource_version
    core.create_namespace({"metadata": {"name": "shop", "labels": {"team": "payments"}}})
    core.patch_namespace("shop", {"metadata": {"labels": {"team": "web"}}})
    core.delete_namespace("shop")
    stream = kubernetes.watch.Watch().stream(core.list_namespace, resource_version=since, timeout_seconds=1)
    events = [(event["type"], event["object"].metadata.name) for event in stream]
    assert events[0] == ("ADDED", "shop") and events[1] == ("MODIFIED", "shop") and events[-1][1] == "shop"
    core.create_namespace({"metadata": {"name": "bank", "labels": {"team": "payments"}}})
    assert [n.metadata.name for n in core.list_namespace(label_selector="team=payments").items] == ["bank"]

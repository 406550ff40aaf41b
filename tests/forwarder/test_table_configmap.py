"""`--routes-configmap`: the table comes from watching the ConfigMap through the (emulated) Kubernetes API."""

from __future__ import annotations

import aiohttp
import pytest
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.config import ObjectRef

from sentryroute.kube import KubeEmulator
from tests.forwarder.support import DEFAULT_TABLE, local_settings, metric_value, routes_table, wait_until

REF = ObjectRef("sentryroute", "sentryroute-routes")


def configmap(content: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": REF.name, "namespace": REF.namespace},
        "data": {"routes.json": content},
    }


@pytest.fixture
async def kube(monkeypatch):
    async with KubeEmulator() as emulator:
        monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig_path))
        yield emulator


async def test_configmap_changes_are_applied(kube, tmp_path, fake_pipeline, caplog):
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": REF.namespace}})
    settings = local_settings(tmp_path / "unused.json", routes_configmap=REF)
    async with Forwarder(settings, pipeline=fake_pipeline) as forwarder:
        # The ConfigMap does not exist yet: /readyz says which one it waits for.
        assert (
            forwarder.not_ready_reason()
            == f"no routes table loaded yet (waiting for ConfigMap {REF.namespace}/{REF.name})"
        )
        kube.apply(configmap(DEFAULT_TABLE.to_json()))
        await wait_until(lambda: fake_pipeline.tables == [DEFAULT_TABLE], what="the first table")
        assert forwarder.not_ready_reason() is None

        kube.apply(configmap("{broken"))
        await wait_until(lambda: metric_value(forwarder, "sentryroute_routes_reload_errors_total") == 1, what="error")

        newer = routes_table([("orders", "orders-v2")])
        kube.apply(configmap(newer.to_json()))
        await wait_until(lambda: fake_pipeline.tables == [DEFAULT_TABLE, newer], what="the updated table")
        assert metric_value(forwarder, "sentryroute_routes_revision_info", {"revision": newer.revision}) == 1

        # Deleting the ConfigMap (an operator reinstall, a mistake) keeps the table in use.
        async with aiohttp.ClientSession() as http:
            path = f"{kube.url}/api/v1/namespaces/{REF.namespace}/configmaps/{REF.name}"
            async with http.delete(path) as resp:
                assert resp.status == 200
        await wait_until(lambda: "was deleted; keeping the current table" in caplog.text, what="the deletion")
        assert forwarder.not_ready_reason() is None
        assert len(fake_pipeline.tables) == 2
        kube.apply(configmap(DEFAULT_TABLE.to_json()))
        await wait_until(lambda: len(fake_pipeline.tables) == 3, what="the re-created ConfigMap's table")
        assert forwarder.not_ready_reason() is None

"""`--report-configmap` (SPEC §4): held values reach the operator's ConfigMap through the (emulated) Kubernetes API."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.config import ObjectRef

from sentryroute.kube import KubeEmulator
from sentryroute.routes import report_key
from tests.forwarder.support import (
    local_settings,
    resource_spans,
    routes_table,
    traces_request,
    wait_until,
    write_table,
)

REF = ObjectRef("sentryroute", "sentryroute-requests")
TABLE = routes_table(pending=["new-service"], refused=["unknown_service:python"], unrouted="hold")
MYSTERY = report_key("service.name", "mystery-svc")


def report_configmap(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": REF.name, "namespace": REF.namespace},
        "data": data,
    }


@pytest.fixture
async def kube(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[KubeEmulator]:
    async with KubeEmulator(kubeconfig_path=tmp_path / "kubeconfig") as emulator:
        monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig_path))
        yield emulator


@pytest.fixture
async def forwarder(kube: KubeEmulator, tmp_path: Path) -> AsyncIterator[Forwarder]:
    path = tmp_path / "routes.json"
    write_table(path, TABLE)
    settings = local_settings(path, report_configmap=REF, report_interval=0.1)
    async with Forwarder(settings) as running:
        yield running


def reported(kube: KubeEmulator) -> dict[str, str] | None:
    configmap = kube.get("v1/configmaps", REF.namespace, REF.name)
    return None if configmap is None else dict(configmap.get("data") or {})


async def send_spans(forwarder: Forwarder, *services: str) -> None:
    body = traces_request(*(resource_spans(service) for service in services)).SerializeToString()
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        async with http.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as resp:
            assert resp.status == 200


async def remove_keys(kube: KubeEmulator, *keys: str) -> None:
    """What the operator does with the entries it has handled."""
    async with aiohttp.ClientSession() as http:
        url = f"{kube.url}/api/v1/namespaces/{REF.namespace}/configmaps/{REF.name}"
        patch = json.dumps({"data": dict.fromkeys(keys)})
        async with http.patch(url, data=patch, headers={"Content-Type": "application/merge-patch+json"}) as resp:
            assert resp.status == 200


async def test_held_values_are_reported_once_and_pending_or_refused_ones_not(
    kube: KubeEmulator, forwarder: Forwarder
) -> None:
    kube.apply(report_configmap({"other": "kept"}), namespace=REF.namespace)
    await send_spans(forwarder, "mystery-svc", "new-service", "unknown_service:python")
    await wait_until(lambda: MYSTERY in (reported(kube) or {}), what="the held value reported")
    data = reported(kube)
    assert data is not None and set(data) == {"other", MYSTERY}  # pending: known already; refused: dropped
    entry = json.loads(data[MYSTERY])
    assert data[MYSTERY] == json.dumps(entry, sort_keys=True, separators=(",", ":"))  # canonical JSON
    assert entry["attribute"] == "service.name" and entry["value"] == "mystery-svc" and entry["reason"] == "unrouted"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["lastSeen"])

    await asyncio.sleep(1.0)  # ten intervals: an unchanged entry is not rewritten (lastSeen churn)
    assert reported(kube) == data

    await remove_keys(kube, MYSTERY)  # handled by the operator, yet still held: reported again
    await wait_until(lambda: MYSTERY in (reported(kube) or {}), what="the value reported again")


async def test_a_full_configmap_gets_no_new_values(
    kube: KubeEmulator, forwarder: Forwarder, caplog: pytest.LogCaptureFixture
) -> None:
    kube.apply(report_configmap({f"filler-{i}": "x" for i in range(1000)}), namespace=REF.namespace)
    await send_spans(forwarder, "mystery-svc")
    await wait_until(lambda: "is full (1000 keys)" in caplog.text, what="the full ConfigMap noticed")
    data = reported(kube)
    assert data is not None and len(data) == 1000 and MYSTERY not in data

    await remove_keys(kube, "filler-0")
    await wait_until(lambda: MYSTERY in (reported(kube) or {}), what="the value reported once there is room")
    assert len(reported(kube) or {}) == 1000


async def test_a_missing_configmap_is_retried_until_it_appears(
    kube: KubeEmulator, forwarder: Forwarder, caplog: pytest.LogCaptureFixture
) -> None:
    await send_spans(forwarder, "mystery-svc")
    await wait_until(lambda: "GET answered 404" in caplog.text, what="the missing ConfigMap noticed")
    assert caplog.text.count("GET answered 404") == 1  # logged once per minute, not every interval
    assert forwarder.not_ready_reason() is None

    kube.apply(report_configmap({}), namespace=REF.namespace)
    await wait_until(lambda: MYSTERY in (reported(kube) or {}), what="the value reported once the ConfigMap exists")

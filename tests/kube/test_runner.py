"""The two ways to run the emulator (on the current loop, in a thread) and kmock's own pytest fixture."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes
import pytest
import yaml

from sentryroute.kube import KubeEmulator, RealisticEmulator


async def test_async_mode_serves_on_the_current_loop(tmp_path):
    kubeconfig = tmp_path / "nested" / "kubeconfig"
    async with KubeEmulator(kubeconfig_path=kubeconfig) as kube, aiohttp.ClientSession() as session:
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "emulator"
        assert config["clusters"][0]["cluster"]["server"] == kube.url
        assert config["users"][0]["user"]["token"]  # clients insist on some credential
        body = {"metadata": {"name": "a"}}
        async with session.post(f"{kube.url}/api/v1/namespaces/default/configmaps", json=body) as response:
            assert response.status == 201
        assert [cm["metadata"]["name"] for cm in kube.objects("v1/configmaps", "default")] == ["a"]
        async with session.get(f"{kube.url}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1") as watch:
            assert [line async for line in watch.content] != []  # the ADDED event, then a clean end


def test_thread_mode_cleans_up_its_temporary_kubeconfig():
    with KubeEmulator().running_in_thread() as kube:
        path = kube.kubeconfig_path
        assert path.is_file()
        with pytest.raises(RuntimeError):
            KubeEmulator().url  # noqa: B018 - a server that is not running has no URL
    assert not path.exists()


def test_open_watches_end_at_shutdown():
    """A watch without timeoutSeconds must not hold the server (or a test's teardown) open."""
    emulator = KubeEmulator(shutdown_timeout=10)
    with emulator.running_in_thread() as kube:
        watch = urllib.request.urlopen(f"{kube.url}/api/v1/namespaces/default/configmaps?watch=true", timeout=30)
        started = time.monotonic()
    assert time.monotonic() - started < 5
    assert watch.read() == b""  # the server ended the stream cleanly


@pytest.mark.kmock(cls=RealisticEmulator)
async def test_usable_as_kmocks_fixture_class(kmock):
    """`@pytest.mark.kmock(cls=RealisticEmulator)` gives kmock's own fixture the realistic behaviour."""
    response = await kmock.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "a"}})
    assert response.status == 201
    assert (await response.json())["metadata"]["resourceVersion"]
    assert kmock.objects["v1/configmaps", "default", "a"]["metadata"]["uid"]


def test_apply_file_handles_lists_and_multiple_documents(tmp_path):
    manifests = tmp_path / "manifests.yaml"
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}}
    listing = {"apiVersion": "v1", "kind": "List", "items": [dict(config_map, metadata={"name": "two"})]}
    manifests.write_text(yaml.safe_dump_all([config_map, listing]))
    with KubeEmulator().running_in_thread() as kube:
        assert [doc["metadata"]["name"] for doc in kube.apply_file(manifests)] == ["one", "two"]
        assert [doc["metadata"]["name"] for doc in kube.apply_file(manifests)] == ["one", "two"]  # replaced
        assert len(kube.objects("v1/configmaps")) == 2


def test_recorded_requests_and_history_are_bounded():
    emulator = RealisticEmulator(requests_kept=3, history_limit=2)
    with KubeEmulator(emulator=emulator).running_in_thread() as kube:
        for value in "abcde":
            kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h"}, "data": {"v": value}})
        with urllib.request.urlopen(f"{kube.url}/api/v1/namespaces/default/configmaps", timeout=10) as answer:
            assert answer.status == 200
        for _ in range(5):
            urllib.request.urlopen(f"{kube.url}/version", timeout=10).close()

        def inspect() -> tuple[int, list[str]]:
            history = emulator.objects["v1/configmaps", "default", "h"].history
            return len(list(emulator)), [version["data"]["v"] for version in history if version]

        requests, values = kube.call(inspect)
        assert requests <= 4 and values == ["d", "e"]


async def test_inspection_from_another_thread_in_async_mode():
    async with KubeEmulator() as kube:
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
        names = await asyncio.to_thread(lambda: [cm["metadata"]["name"] for cm in kube.objects("v1/configmaps")])
        assert names == ["a"]


def test_a_taken_port_fails_loudly_and_leaves_nothing_running():
    with KubeEmulator().running_in_thread() as first:
        port = int(first.url.rsplit(":", 1)[1])
        second = KubeEmulator(port=port)
        with pytest.raises(RuntimeError, match="did not start"), second.running_in_thread():
            pass
        with pytest.raises(RuntimeError, match="not running"):
            second.url  # noqa: B018 - the property is the assertion
    with pytest.raises(RuntimeError, match="not running"):
        first.url  # noqa: B018 - and a stopped server has no URL any more


def test_standalone_command_serves_until_terminated(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    crds = Path(__file__).resolve().parents[2] / "deploy" / "crds"
    command = [sys.executable, "-m", "sentryroute.kube", "--kubeconfig", str(kubeconfig), "--apply", str(crds)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        lines = [server.stdout.readline() for _ in range(len(list(crds.glob("*.yaml"))) + 2)]  # type: ignore[union-attr]
        assert lines[-1].strip() == f"export KUBECONFIG={kubeconfig}"
        with kubernetes.config.new_client_from_config(config_file=str(kubeconfig)) as api:
            extensions: Any = kubernetes.client.ApiextensionsV1Api(api)
            crd_names = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
        assert "sentryroutes.sentryroute.dev" in crd_names
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0

"""Other real clients against the emulator: the DynamicClient (discovery-driven) and kubectl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes
import pytest
from kubernetes.dynamic import DynamicClient

from sentryroute.kube import KubeEmulator
from tests.kube.helpers import WIDGET_CRD

REPO = Path(__file__).resolve().parents[2]


def find_kubectl() -> str | None:
    """The npm-layer kubectl the chart tools install under .tools/ (k8s-testing.md §3), else one on PATH."""
    bundled = REPO / ".tools" / "kubectl" / "kubectl"
    return str(bundled) if bundled.is_file() and os.access(bundled, os.X_OK) else shutil.which("kubectl")


def test_dynamic_client_finds_custom_kinds_through_discovery(widgets: None, api: kubernetes.client.ApiClient):
    dynamic = DynamicClient(api)
    widgets_api = dynamic.resources.get(api_version="example.dev/v1", kind="Widget")
    widgets_api.create(
        body={"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}}, namespace="ns"
    )
    listing = widgets_api.get(namespace="ns")
    assert listing.kind == "WidgetList" and [item.metadata.name for item in listing.items] == ["w"]
    secrets = dynamic.resources.get(api_version="v1", kind="Secret")
    assert secrets.get(namespace="default").kind == "SecretList"


@pytest.fixture
def kubectl(kube: KubeEmulator):
    binary = find_kubectl()
    if binary is None:
        pytest.skip("kubectl is not installed (see k8s-testing.md §3 for the npm layer)")

    def run(*args: str, stdin: str | None = None) -> str:
        command = [binary, f"--kubeconfig={kube.kubeconfig_path}", *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def test_kubectl_applies_and_reads(kube: KubeEmulator, kubectl):
    manifests = json.dumps({"apiVersion": "v1", "kind": "List", "items": [WIDGET_CRD]})
    kubectl("apply", "--validate=false", "-f", "-", stdin=manifests)
    widget = {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}}
    for _ in range(2):  # re-applying is idempotent
        kubectl("apply", "--validate=false", "-f", "-", stdin=json.dumps(widget))
    assert kubectl("get", "wd", "-A", "-o", "jsonpath={.items[*].metadata.name}") == "w"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"token": "x"}}
    kubectl(
        "create", "--validate=false", "-f", "-", stdin=json.dumps(secret)
    )  # generators (`create secret`) send protobuf: not served
    assert kubectl("get", "secret", "token", "-o", "jsonpath={.metadata.name}") == "token"
    kubectl("delete", "widget", "w", "-n", "shop")
    assert kube.objects("example.dev/v1/widgets") == []

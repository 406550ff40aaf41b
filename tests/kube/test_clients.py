"""Other real clients against the emulator: the DynamicClient (discovery-driven) and kubectl."""

from __future__ import annotations

import json

import kubernetes
import pytest
from kubernetes.dynamic import DynamicClient

from sentryroute.kube import KubeEmulator
from tests.kube.helpers import WIDGET_CRD, Kubectl, kubectl_for


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
def kubectl(kube: KubeEmulator) -> Kubectl:
    return kubectl_for(kube)


def test_kubectl_applies_and_reads(kube: KubeEmulator, kubectl: Kubectl):
    kubectl("apply", "-f", "-", stdin=json.dumps(WIDGET_CRD))  # validated by the server (fieldValidation)
    widget = {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}}
    for _ in range(2):  # re-applying is idempotent
        kubectl("apply", "-f", "-", stdin=json.dumps(widget))
    assert kubectl("get", "wd", "-A", "-o", "jsonpath={.items[*].metadata.name}") == "w"
    # Manifests go as JSON (generators send protobuf: see the next test).
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"token": "x"}}
    kubectl("create", "-f", "-", stdin=json.dumps(secret))
    assert kubectl("get", "secret", "token", "-o", "jsonpath={.data.token}") == "eA=="
    kubectl("delete", "widget", "w", "-n", "shop")
    assert kube.objects("example.dev/v1/widgets") == []


def test_kubectl_generators_send_protobuf_and_it_is_read(kube: KubeEmulator, kubectl: Kubectl, tmp_path):
    """`kubectl create namespace|secret|configmap|serviceaccount` post protobuf; the README's commands work."""
    kubectl("create", "namespace", "sentryroute")
    kubectl("-n", "sentryroute", "create", "secret", "generic", "sentry-token", "--from-literal=token=s3cr3t")
    (tmp_path / "blob.bin").write_bytes(b"\x00\xff")
    kubectl(
        "-n", "sentryroute", "create", "configmap", "routes",
        "--from-literal=routes.json={}", f"--from-file={tmp_path / 'blob.bin'}",
    )  # fmt: skip
    kubectl("-n", "sentryroute", "create", "serviceaccount", "forwarder")
    kubectl("label", "namespace", "sentryroute", "team=platform")
    namespace = json.loads(kubectl("get", "namespace", "sentryroute", "-o", "json"))
    assert namespace["metadata"]["labels"] == {"team": "platform"} and "generateName" not in namespace["metadata"]
    assert kubectl("-n", "sentryroute", "get", "secret", "sentry-token", "-o", "jsonpath={.data.token}") == "czNjcjN0"
    configmap = json.loads(kubectl("-n", "sentryroute", "get", "configmap", "routes", "-o", "json"))
    assert configmap["data"] == {"routes.json": "{}"} and configmap["binaryData"] == {"blob.bin": "AP8="}
    assert kubectl("-n", "sentryroute", "get", "sa", "-o", "name") == "serviceaccount/forwarder\n"


def test_kubectl_generator_of_an_unread_kind_is_told_to_apply_a_manifest(kube: KubeEmulator):
    with pytest.raises(AssertionError, match=r"protobuf bodies only for .*kubectl apply -f"):
        kubectl_for(kube)("create", "deployment", "web", "--image=nginx")

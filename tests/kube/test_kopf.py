"""A real kopf operator (`kopf run -A --standalone`) against the emulator: create, update and delete handlers."""

from __future__ import annotations

import textwrap
from pathlib import Path

from kopf.testing import KopfRunner

from sentryroute.kube import KubeEmulator
from tests.kube.helpers import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, WIDGETS, CoreApi, CustomApi, eventually

OPERATOR = textwrap.dedent(
    """
    import kopf
    import kubernetes

    @kopf.on.startup()
    def configure(settings, **_):
        settings.watching.server_timeout = 30
        kubernetes.config.load_kube_config()  # the same $KUBECONFIG kopf logged in with

    @kopf.on.create("example.dev", "v1", "widgets")
    def created(spec, name, namespace, patch, **_):
        body = {"metadata": {"name": f"{name}-size", "labels": {"widget": name}}, "data": {"size": str(spec["size"])}}
        kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, body)
        patch.status["phase"] = "Sized"
        return {"configmap": f"{name}-size"}

    @kopf.on.update("example.dev", "v1", "widgets", field="spec")
    def updated(spec, name, namespace, **_):
        body = {"data": {"size": str(spec["size"])}}
        kubernetes.client.CoreV1Api().patch_namespaced_config_map(f"{name}-size", namespace, body)

    @kopf.on.delete("example.dev", "v1", "widgets")
    def deleted(name, namespace, **_):
        kubernetes.client.CoreV1Api().delete_namespaced_config_map(f"{name}-size", namespace)

    @kopf.on.event("v1", "pods", labels={"widget-probe": "yes"})
    def pod_seen(name, namespace, type, **_):
        if type in ("ADDED", "MODIFIED"):
            labels = {"metadata": {"labels": {"seen": "yes"}}}
            kubernetes.client.CoreV1Api().patch_namespaced_pod(name, namespace, labels)
    """
)


def test_kopf_handlers_fire(kube: KubeEmulator, widgets: None, tmp_path: Path, core: CoreApi, custom: CustomApi):
    args = (WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR, encoding="utf-8")

    with KopfRunner(["run", "-A", "--standalone", str(operator)], timeout=60) as runner:
        custom.create_namespaced_custom_object(*args, {"metadata": {"name": "w"}, "spec": {"size": 1}})
        eventually(lambda: core.read_namespaced_config_map("w-size", "default").data == {"size": "1"})
        status = eventually(lambda: custom.get_namespaced_custom_object(*args, "w").get("status"))
        assert status["phase"] == "Sized" and status["created"] == {"configmap": "w-size"}
        assert custom.get_namespaced_custom_object(*args, "w")["metadata"]["finalizers"]

        custom.patch_namespaced_custom_object(*args, "w", {"spec": {"size": 2}})
        eventually(lambda: core.read_namespaced_config_map("w-size", "default").data == {"size": "2"})

        pod = {"metadata": {"name": "probe", "labels": {"widget-probe": "yes"}}, "spec": {"containers": []}}
        core.create_namespaced_pod("default", pod)
        eventually(lambda: core.read_namespaced_pod("probe", "default").metadata.labels.get("seen") == "yes")

        custom.delete_namespaced_custom_object(*args, "w")
        eventually(
            lambda: kube.get(WIDGETS, "default", "w") is None and kube.get("v1/configmaps", "default", "w-size") is None
        )

    assert runner.exception is None and runner.exit_code == 0, runner.output

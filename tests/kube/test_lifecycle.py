"""Status subresource, finalizers, garbage collection and CustomResourceDefinitions, as a real cluster does them."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from sentryroute.kube import KubeEmulator
from tests.kube.helpers import WIDGET_CRD, WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, WIDGETS, CoreApi, CustomApi

ARGS = (WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)


def test_status_subresource_split(widgets: None, custom: CustomApi):
    created = custom.create_namespaced_custom_object(
        *ARGS, {"metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"phase": "ignored on create"}}
    )
    assert "status" not in created

    main = custom.patch_namespaced_custom_object(*ARGS, "w", {"spec": {"size": 2}, "status": {"phase": "ignored"}})
    assert main["spec"] == {"size": 2} and "status" not in main

    status = custom.patch_namespaced_custom_object_status(*ARGS, "w", {"spec": {"size": 9}, "status": {"phase": "Ok"}})
    assert status["spec"] == {"size": 2} and status["status"] == {"phase": "Ok"}
    assert status["metadata"]["generation"] == main["metadata"]["generation"]  # status never bumps generation

    replaced = custom.replace_namespaced_custom_object(*ARGS, "w", {"metadata": {"name": "w"}, "spec": {"size": 3}})
    assert replaced["status"] == {"phase": "Ok"}  # a main-resource PUT keeps the stored status


def test_kinds_without_status_subresource_write_status_directly(kube: KubeEmulator, custom: CustomApi):
    gadget_crd = copy.deepcopy(WIDGET_CRD)
    gadget_crd["metadata"]["name"] = "gadgets.example.dev"
    gadget_crd["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}
    del gadget_crd["spec"]["versions"][0]["subresources"]
    kube.apply(gadget_crd)
    args = (WIDGET_GROUP, WIDGET_VERSION, "default", "gadgets")
    custom.create_namespaced_custom_object(*args, {"metadata": {"name": "g"}, "status": {"phase": "kept"}})
    patched = custom.patch_namespaced_custom_object(*args, "g", {"status": {"phase": "written"}})
    assert patched["status"] == {"phase": "written"}
    with pytest.raises(ApiException) as missing:
        custom.patch_namespaced_custom_object_status(*args, "g", {"status": {}})
    assert missing.value.status == 404


def test_deletion_waits_for_finalizers(kube: KubeEmulator, widgets: None, custom: CustomApi):
    custom.create_namespaced_custom_object(*ARGS, {"metadata": {"name": "f", "finalizers": ["example.dev/cleanup"]}})
    custom.delete_namespaced_custom_object(*ARGS, "f")
    deleting = custom.get_namespaced_custom_object(*ARGS, "f")
    assert deleting["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as forbidden:
        custom.patch_namespaced_custom_object(*ARGS, "f", {"metadata": {"finalizers": ["example.dev/cleanup", "more"]}})
    assert forbidden.value.status == 422

    custom.patch_namespaced_custom_object(*ARGS, "f", {"metadata": {"finalizers": None}})
    assert kube.get(WIDGETS, "default", "f") is None


def test_owner_references_are_garbage_collected(kube: KubeEmulator, core: CoreApi):
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map("default", {"metadata": {"name": "child", "ownerReferences": [reference]}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "bystander"}})
    core.delete_namespaced_config_map("owner", "default")
    assert [cm["metadata"]["name"] for cm in kube.objects("v1/configmaps")] == ["bystander"]


def test_namespace_deletion_removes_its_objects(kube: KubeEmulator, core: CoreApi):
    core.create_namespace({"metadata": {"name": "gone"}})
    core.create_namespaced_config_map("gone", {"metadata": {"name": "inside"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "outside"}})
    core.delete_namespace("gone")
    assert [cm["metadata"]["name"] for cm in kube.objects("v1/configmaps")] == ["outside"]


def test_delete_collection_by_label(kube: KubeEmulator, core: CoreApi):
    for name, tier in [("a", "web"), ("b", "web"), ("c", "db")]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"tier": tier}}})
    core.delete_collection_namespaced_config_map("default", label_selector="tier=web")
    assert [cm["metadata"]["name"] for cm in kube.objects("v1/configmaps")] == ["c"]


def test_crd_registers_serves_and_unregisters(kube: KubeEmulator, api: kubernetes.client.ApiClient):
    extensions: Any = kubernetes.client.ApiextensionsV1Api(api)
    custom: CustomApi = kubernetes.client.CustomObjectsApi(api)
    extensions.create_custom_resource_definition(WIDGET_CRD)

    stored = extensions.read_custom_resource_definition("widgets.example.dev")
    assert {c.type: c.status for c in stored.status.conditions} == {"NamesAccepted": "True", "Established": "True"}
    resources = custom.get_api_resources(WIDGET_GROUP, WIDGET_VERSION).resources
    widget = next(r for r in resources if r.name == WIDGET_PLURAL)
    assert (widget.kind, widget.namespaced, widget.short_names) == ("Widget", True, ["wd"])
    assert "widgets/status" in {r.name for r in resources}
    custom.create_namespaced_custom_object(*ARGS, {"metadata": {"name": "w"}})

    extensions.delete_custom_resource_definition("widgets.example.dev")
    with pytest.raises(ApiException) as undiscovered:
        custom.get_api_resources(WIDGET_GROUP, WIDGET_VERSION)
    assert undiscovered.value.status == 404
    assert kube.call(lambda: WIDGETS not in kube.emulator.resources)  # discovery did not re-declare it
    with pytest.raises(ApiException) as gone:
        custom.list_namespaced_custom_object(*ARGS)
    assert gone.value.status == 404


def test_malformed_crd_is_rejected(api: kubernetes.client.ApiClient):
    extensions: Any = kubernetes.client.ApiextensionsV1Api(api)
    wrong_name = dict(WIDGET_CRD, metadata={"name": "widgets.elsewhere.dev"})
    with pytest.raises(ApiException) as invalid:
        extensions.create_custom_resource_definition(wrong_name)
    assert invalid.value.status == 422

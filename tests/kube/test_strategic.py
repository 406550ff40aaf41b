"""Strategic merge patch: what kubectl apply and the `kubernetes` client send for built-in kinds."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from sentryroute.kube.strategic import strategic_merge_patch
from tests.kube.helpers import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, CoreApi, CustomApi

POD_SPEC = {
    "containers": [
        {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "side:1"},
    ],
    "tolerations": [{"key": "a"}],
}


def test_lists_merge_by_their_key():
    patch = {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}
    merged = strategic_merge_patch(POD_SPEC, patch)
    app, sidecar = merged["containers"]
    assert app == {
        "name": "app",
        "image": "app:2",
        "ports": [{"containerPort": 80}],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    }
    assert sidecar == {"name": "sidecar", "image": "side:1"}


def test_directives():
    delete_sidecar = {"containers": [{"name": "sidecar", "$patch": "delete"}], "$setElementOrder/containers": []}
    assert [c["name"] for c in strategic_merge_patch(POD_SPEC, delete_sidecar)["containers"]] == ["app"]
    replaced = strategic_merge_patch({"a": {"x": 1, "y": 2}}, {"a": {"$patch": "replace", "z": 3}})
    assert replaced == {"a": {"z": 3}}
    retained = strategic_merge_patch({"x": 1, "y": 2}, {"$retainKeys": ["y", "z"], "z": 3})
    assert retained == {"y": 2, "z": 3}
    assert strategic_merge_patch({"f": ["a", "b"]}, {"$deleteFromPrimitiveList/f": ["a"]}) == {"f": ["b"]}
    assert strategic_merge_patch(POD_SPEC, {"tolerations": [{"key": "b"}]})["tolerations"] == [{"key": "b"}]  # no key


def test_finalizers_are_a_union():
    merged = strategic_merge_patch({"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": ["b", "a"]}})
    assert merged["metadata"]["finalizers"] == ["a", "b"]


def test_the_client_patches_pods_strategically(core: CoreApi):
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": POD_SPEC})
    patched = core.patch_namespaced_pod("p", "default", {"spec": {"containers": [{"name": "app", "image": "app:2"}]}})
    assert [(c.name, c.image) for c in patched.spec.containers] == [("app", "app:2"), ("sidecar", "side:1")]
    assert patched.spec.containers[0].ports[0].container_port == 80


def test_custom_resources_refuse_strategic_merge(widgets: None, custom: CustomApi):
    args = (WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)
    custom.create_namespaced_custom_object(*args, {"metadata": {"name": "w"}})
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(
            *args, "w", {"spec": {}}, _content_type="application/strategic-merge-patch+json"
        )
    assert refused.value.status == 415

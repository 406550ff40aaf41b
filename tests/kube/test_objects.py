"""Create, read, update, replace and delete with the official client: the server fields it relies on."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from sentryroute.kube import KubeEmulator
from tests.kube.helpers import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, CoreApi, CustomApi


def raw_request(kube: KubeEmulator, method: str, path: str, body: Any = None, content_type: str = "application/json"):
    """One HTTP call without the client, to see status codes the client hides."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(kube.url + path, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_create_answers_201_with_server_fields(kube: KubeEmulator, core: CoreApi):
    status, body = raw_request(kube, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "raw"}})
    assert status == 201
    assert body["metadata"]["namespace"] == "default"

    created = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert created is not None  # kubernetes 37 returns None on a 200
    assert created.metadata.namespace == "default"  # filled from the URL
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert int(created.metadata.resource_version) > int(body["metadata"]["resourceVersion"])
    assert (created.kind, created.api_version) == ("ConfigMap", "v1")


def test_generate_name_and_duplicates(core: CoreApi):
    generated = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == len("gen-") + 5

    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body or "{}")["reason"] == "AlreadyExists"


def test_missing_objects_and_unknown_resources_are_404(core: CoreApi, custom: CustomApi):
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as undeclared:  # no CRD yet: a real cluster has no such resource either
        custom.create_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL, {})
    assert undeclared.value.status == 404


def test_every_write_bumps_resource_version_and_no_op_does_not(core: CoreApi):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "rv"}, "data": {"k": "1"}})
    patched = core.patch_namespaced_config_map("rv", "default", {"data": {"k": "2"}})
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    again = core.patch_namespaced_config_map("rv", "default", {"data": {"k": "2"}})
    assert again.metadata.resource_version == patched.metadata.resource_version


def test_generation_bumps_on_spec_changes_only(widgets: None, custom: CustomApi):
    args = (WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)
    created = custom.create_namespaced_custom_object(*args, {"metadata": {"name": "w"}, "spec": {"size": 1}})
    assert created["metadata"]["generation"] == 1
    labelled = custom.patch_namespaced_custom_object(*args, "w", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    resized = custom.patch_namespaced_custom_object(*args, "w", {"spec": {"size": 2}})
    assert resized["metadata"]["generation"] == 2
    assert resized["metadata"]["uid"] == created["metadata"]["uid"]
    assert resized["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]


def test_replace_and_optimistic_concurrency(core: CoreApi):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "put"}, "data": {"a": "1"}})
    body = {"metadata": {"name": "put", "resourceVersion": created.metadata.resource_version}, "data": {"b": "2"}}
    replaced = core.replace_namespaced_config_map("put", "default", body)
    assert replaced.data == {"b": "2"}  # PUT replaces, it does not merge
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("put", "default", body)  # the same, now stale, resourceVersion
    assert stale.value.status == 409
    with pytest.raises(ApiException) as stale_patch:
        core.patch_namespaced_config_map("put", "default", body)
    assert stale_patch.value.status == 409


def test_json_patch_and_failed_test_is_422(core: CoreApi):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "jp"}, "data": {"a": "1"}})
    rv = created.metadata.resource_version
    patched = core.patch_namespaced_config_map(
        "jp",
        "default",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/data/b", "value": "2"},
        ],
    )
    assert patched.data == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as failed:  # kopf's optimistic lock: the resourceVersion moved on
        core.patch_namespaced_config_map(
            "jp", "default", [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}]
        )
    assert failed.value.status == 422


def test_merge_patch_replaces_a_map_by_a_scalar_and_null_deletes(kube: KubeEmulator, core: CoreApi):
    core.create_namespaced_config_map("default", {"metadata": {"name": "mp", "labels": {"a": "1", "b": "2"}}})
    path = "/api/v1/namespaces/default/configmaps/mp"
    status, body = raw_request(
        kube, "PATCH", path, {"metadata": {"labels": {"a": None}}}, "application/merge-patch+json"
    )
    assert status == 200 and body["metadata"]["labels"] == {"b": "2"}


def test_dry_run_writes_nothing(kube: KubeEmulator, core: CoreApi):
    answer = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert answer.metadata.name == "dry"
    assert kube.get("v1/configmaps", "default", "dry") is None


def test_namespace_mismatch_and_cluster_scope(kube: KubeEmulator, core: CoreApi):
    with pytest.raises(ApiException) as mismatch:
        core.create_namespaced_config_map("default", {"metadata": {"name": "x", "namespace": "other"}})
    assert mismatch.value.status == 400
    namespace = core.create_namespace({"metadata": {"name": "shop"}})
    assert namespace.metadata.namespace is None and namespace.status.phase == "Active"
    assert {"default", "kube-system", "shop"} <= {ns.metadata.name for ns in core.list_namespace().items}


def test_server_side_apply_creates_then_merges(kube: KubeEmulator):
    path = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=test"
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}
    assert raw_request(kube, "PATCH", path, manifest, "application/apply-patch+yaml")[0] == 201
    manifest["data"] = {"b": "2"}
    status, body = raw_request(kube, "PATCH", path, manifest, "application/apply-patch+yaml")
    assert status == 200 and body["data"] == {"a": "1", "b": "2"}


def test_version_endpoints_and_core_discovery(kube: KubeEmulator, api: kubernetes.client.ApiClient):
    assert kubernetes.client.VersionApi(api).get_code().git_version.startswith("v1.")
    assert raw_request(kube, "GET", "/version")[0] == 200
    status, discovery = raw_request(kube, "GET", "/api/v1")
    assert status == 200 and discovery["groupVersion"] == "v1"  # kmock says "/v1", which kubectl cannot use
    assert {"secrets", "serviceaccounts", "configmaps"} <= {r["name"] for r in discovery["resources"]}


def test_kmock_records_requests_and_history(kube: KubeEmulator, core: CoreApi):
    """kmock's own inspection stays available: `objects[...]` with history, and the recorded requests."""
    core.create_namespaced_config_map("default", {"metadata": {"name": "h"}, "data": {"v": "1"}})
    core.patch_namespaced_config_map("h", "default", {"data": {"v": "2"}})

    def inspect() -> tuple[list[Any], int]:
        versions = kube.emulator.objects["v1/configmaps", "default", "h"].history
        return [version["data"]["v"] for version in versions if version], len(list(kube.emulator))

    values, requests = kube.call(inspect)
    assert values == ["1", "2"] and requests >= 2


def test_secret_string_data_becomes_base64_data(core: CoreApi):
    core.create_namespaced_secret("default", {"metadata": {"name": "token"}, "stringData": {"token": "s3cret"}})
    stored = core.read_namespaced_secret("token", "default")
    assert stored.data == {"token": base64.b64encode(b"s3cret").decode()} and stored.string_data is None


def test_configmaps_over_one_mebibyte_are_rejected(core: CoreApi):
    """The routes table lives in a ConfigMap: a real API server refuses more than 1 MiB of data, so does this one."""
    core.create_namespaced_config_map("default", {"metadata": {"name": "fits"}, "data": {"a": "x" * (1024 * 1024)}})
    with pytest.raises(ApiException) as too_big:
        core.patch_namespaced_config_map("fits", "default", {"data": {"b": "y"}})
    assert too_big.value.status == 422 and "Too long" in json.loads(too_big.value.body or "{}")["message"]
    with pytest.raises(ApiException) as bad_key:
        core.create_namespaced_config_map("default", {"metadata": {"name": "k"}, "data": {"a/b": "x"}})
    assert bad_key.value.status == 422

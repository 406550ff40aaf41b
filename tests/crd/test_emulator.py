"""The CRD applied to the emulated API server: the resource is served, a SentryRoute is created, and its status
is written through the status subresource (what the operator does) without touching the spec."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from sentryroute.kube import KubeEmulator
from tests.crd.examples import SPEC_EXAMPLE
from tests.crd.schema_tools import CRD_PATH
from tests.kube.helpers import kubectl_for

ARGS = ("sentryroute.dev", "v1alpha1", "shop", "sentryroutes")


@pytest.fixture
def custom() -> Iterator[Any]:  # Any: kubernetes 37 types bodies as models, the tests pass plain dicts
    with KubeEmulator().running_in_thread() as kube, kube.api_client() as api:
        kube.apply_file(CRD_PATH)
        yield kubernetes.client.CustomObjectsApi(api)


def test_resource_is_served_with_its_short_name(custom: Any):
    resources = {r.name: r for r in custom.get_api_resources("sentryroute.dev", "v1alpha1").resources}
    route = resources["sentryroutes"]
    assert (route.kind, route.namespaced, route.short_names, route.singular_name) == (
        "SentryRoute",
        True,
        ["sroute"],
        "sentryroute",
    )
    assert "sentryroutes/status" in resources


def test_create_then_write_status_through_the_subresource(custom: Any):
    body = {key: value for key, value in SPEC_EXAMPLE.items() if key != "status"}
    created = custom.create_namespaced_custom_object(*ARGS, body)
    assert created["spec"] == SPEC_EXAMPLE["spec"] and created["metadata"]["generation"] == 1

    status = dict(SPEC_EXAMPLE["status"], observedGeneration=1)
    patched = custom.patch_namespaced_custom_object_status(*ARGS, "shop", {"status": status, "spec": {}})
    assert patched["status"] == status
    assert patched["spec"] == SPEC_EXAMPLE["spec"] and patched["metadata"]["generation"] == 1

    custom.patch_namespaced_custom_object(*ARGS, "shop", {"spec": {"deletionPolicy": "Delete"}})
    stored = custom.get_namespaced_custom_object(*ARGS, "shop")
    assert stored["metadata"]["generation"] == 2 and stored["status"]["observedGeneration"] == 1


def test_the_server_defaults_and_prunes_the_spec(custom: Any):
    body = {"metadata": {"name": "minimal"}, "spec": {"mapping": {"a": "b"}, "autoProvision": {}, "typo": 1}}
    created = custom.create_namespaced_custom_object(*ARGS, body)
    assert created["spec"] == {
        "attribute": "service.name",
        "mapping": {"a": "b"},
        "autoProvision": {
            "enabled": False,
            "platform": "other",
            "projectTemplate": "{service}",
            "derive": "explicit",
            "staleAfter": "24h",
        },
        "connection": "default",
        "deletionPolicy": "Retain",
    }
    status = {"projectCount": 0, "kopf": {"progress": {"handler": {"retries": 1}}}}
    patched = custom.patch_namespaced_custom_object_status(*ARGS, "minimal", {"status": status})
    assert patched["status"] == status  # status keeps unknown fields (kopf's progress)


def test_kubectl_validates_explains_and_lists():
    """Plain `kubectl apply` (server-side field validation), `kubectl explain` and the printer columns."""
    with KubeEmulator().running_in_thread() as kube:
        kubectl = kubectl_for(kube)
        kubectl("apply", "-f", str(CRD_PATH))
        kube.apply(dict(SPEC_EXAMPLE, status=dict(SPEC_EXAMPLE["status"], projectCount=3)))
        header, row = kubectl("get", "sroute", "-A").splitlines()
        assert header.split() == ["NAMESPACE", "NAME", "ATTRIBUTE", "PROJECTS", "READY", "AGE"]
        assert row.split()[:5] == ["shop", "shop", "service.name", "3", "True"]

        explained = kubectl("explain", "sroute.spec.autoProvision.derive")
        assert "ENUM" in explained and "inferred" in explained and "Where a pod's service.name comes from" in explained

        typo = {"apiVersion": "sentryroute.dev/v1alpha1", "kind": "SentryRoute", "metadata": {"name": "t"}}
        with pytest.raises(AssertionError, match=re.escape('unknown field "spec.mapings"')):
            kubectl("apply", "-f", "-", stdin=json.dumps(dict(typo, spec={"mapings": {"a": "b"}})))
        kubectl("apply", "-f", "-", stdin=json.dumps(dict(typo, spec={"mapping": {"a": "b"}})))
        assert kube.get("sentryroute.dev/v1alpha1/sentryroutes", "default", "t") is not None


def test_the_server_rejects_what_the_schema_rejects(custom: Any):
    """Spec and status writes are validated (types, patterns, enums, bounds) as in a real cluster; not CEL."""
    bad_slug = {"metadata": {"name": "bad"}, "spec": {"mapping": {"orders": "Orders!"}}}
    with pytest.raises(kubernetes.client.exceptions.ApiException) as invalid:
        custom.create_namespaced_custom_object(*ARGS, bad_slug)
    assert invalid.value.status == 422
    assert "spec.mapping.orders" in json.loads(invalid.value.body or "{}")["message"]

    custom.create_namespaced_custom_object(*ARGS, {"metadata": {"name": "ok"}, "spec": {"mapping": {"a": "b"}}})
    too_long = {"status": {"projects": [{"value": "v" * 1025, "state": "Ready"}]}}
    with pytest.raises(kubernetes.client.exceptions.ApiException) as refused:
        custom.patch_namespaced_custom_object_status(*ARGS, "ok", too_long)
    assert refused.value.status == 422
    assert "status.projects[0].value: Too long" in json.loads(refused.value.body or "{}")["message"]

"""The CRD applied to the emulated API server: the resource is served, a SentryRoute is created, and its status
is written through the status subresource (what the operator does) without touching the spec."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from sentryroute.kube import KubeEmulator
from tests.crd.schema_tools import CRD_PATH
from tests.crd.test_instances import SPEC_EXAMPLE

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

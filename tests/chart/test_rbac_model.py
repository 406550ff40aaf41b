"""The RBAC model the coverage tests rely on decides like the API server (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rbac import Access, access_of, denied

FORWARDER_RULES: list[tuple[str | None, dict[str, Any]]] = [
    (
        "ns",
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["routes"],
            "verbs": ["get", "list", "watch"],
        },
    ),
    (None, {"apiGroups": ["sentryroute.dev"], "resources": ["sentryroutes/status"], "verbs": ["patch"]}),
]


@pytest.mark.parametrize(
    ("method", "path", "params", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/configmaps/routes", {}, Access("get", "", "configmaps", "ns", "routes")),
        ("GET", "/api/v1/configmaps", {}, Access("list", "", "configmaps", None, None)),
        (
            "GET",
            "/api/v1/namespaces/ns/configmaps",
            {"watch": "true", "fieldSelector": "metadata.name=routes"},
            Access("watch", "", "configmaps", "ns", "routes"),
        ),
        (
            "PATCH",
            "/apis/sentryroute.dev/v1alpha1/namespaces/shop/sentryroutes/shop/status",
            {},
            Access("patch", "sentryroute.dev", "sentryroutes/status", "shop", "shop"),
        ),
        ("POST", "/api/v1/namespaces/ns/events", {}, Access("create", "", "events", "ns", None)),
        ("DELETE", "/api/v1/namespaces/ns/pods", {}, Access("deletecollection", "", "pods", "ns", None)),
        ("GET", "/apis/apps/v1", {}, None),
        ("GET", "/version", {}, None),
    ],
)
def test_requests_map_to_rbac_attributes(
    method: str, path: str, params: dict[str, str], expected: Access | None
) -> None:
    assert access_of(method, path, params) == expected


@pytest.mark.parametrize(
    ("access", "allowed"),
    [
        (Access("watch", "", "configmaps", "ns", "routes"), True),  # fieldSelector names the object
        (Access("watch", "", "configmaps", "ns", None), False),  # a plain watch is not limited by resourceNames
        (Access("get", "", "configmaps", "ns", "other"), False),
        (Access("get", "", "configmaps", "elsewhere", "routes"), False),  # a Role stays in its namespace
        (Access("list", "", "configmaps", None, None), False),  # cluster-wide needs a ClusterRole
        (Access("create", "", "configmaps", "ns", "routes"), False),
        (Access("patch", "sentryroute.dev", "sentryroutes/status", "shop", "a"), True),  # ClusterRole: any namespace
        (Access("patch", "sentryroute.dev", "sentryroutes", "shop", "a"), False),  # status is its own resource
    ],
)
def test_rules_allow_like_the_api_server(access: Access, allowed: bool) -> None:
    assert (denied([access], FORWARDER_RULES) == []) is allowed

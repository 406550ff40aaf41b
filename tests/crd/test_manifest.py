"""The CRD manifest itself: names, scope, printer columns, bounds on everything, descriptions, and that the
Kubernetes schema for CustomResourceDefinition (1.30 and 1.37, strict) accepts it."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.crd.schema_tools import load_crd, open_api_schema, walk

# Nodes whose shape Kubernetes fixes (ObjectMeta, apiVersion, kind): no bounds or descriptions of ours apply.
STANDARD = {".apiVersion", ".kind", ".metadata"}


def test_names_scope_and_version():
    spec = load_crd()["spec"]
    assert load_crd()["metadata"]["name"] == "sentryroutes.sentryroute.dev"
    assert spec["group"] == "sentryroute.dev" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "SentryRoute",
        "listKind": "SentryRouteList",
        "plural": "sentryroutes",
        "singular": "sentryroute",
        "shortNames": ["sroute"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns():
    (version,) = load_crd()["spec"]["versions"]
    columns = [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Attribute", "string", ".spec.attribute"),
        ("Projects", "integer", ".status.projectCount"),
        ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


def is_unbounded(node: dict) -> bool:
    kind = node.get("type")
    if kind == "string":
        return "maxLength" not in node and "enum" not in node and node.get("format") != "date-time"
    if kind == "object":
        return isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node
    return kind == "array" and "maxItems" not in node


def test_every_string_map_and_list_is_bounded():
    """Unbounded strings, maps or lists make the API server's CEL cost estimate fail (and invite huge objects)."""
    assert [path for path, node in walk(open_api_schema()) if path not in STANDARD and is_unbounded(node)] == []


def test_every_field_is_described_for_kubectl_explain():
    undescribed = [
        path
        for path, node in walk(open_api_schema())
        if path not in STANDARD and not path.endswith("[*]") and not (node.get("description") or "").strip()
        if not (path.endswith("[]") and node.get("type") == "string")  # list items described by their list
    ]
    assert undescribed == []


def test_status_keeps_unknown_fields_for_kopf():
    status = open_api_schema()["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert {"observedGeneration", "conditions", "projects", "projectCount"} <= status["properties"].keys()


def test_spec_defaults():
    spec = open_api_schema()["properties"]["spec"]["properties"]
    auto = spec["autoProvision"]["properties"]
    defaults = {
        "attribute": spec["attribute"]["default"],
        "connection": spec["connection"]["default"],
        "deletionPolicy": spec["deletionPolicy"]["default"],
        "enabled": auto["enabled"]["default"],
        "platform": auto["platform"]["default"],
        "projectTemplate": auto["projectTemplate"]["default"],
        "derive": auto["derive"]["default"],
        "staleAfter": auto["staleAfter"]["default"],
    }
    assert defaults == {
        "attribute": "service.name",
        "connection": "default",
        "deletionPolicy": "Retain",
        "enabled": False,
        "platform": "other",
        "projectTemplate": "{service}",
        "derive": "explicit",
        "staleAfter": "24h",
    }


@pytest.mark.parametrize("kubernetes_version", ["1.30.0", "1.37.0"])
def test_kubernetes_accepts_the_manifest_strictly(kubernetes_version: str):
    kubernetes_validate.validate(load_crd(), kubernetes_version, strict=True)

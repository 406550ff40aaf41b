"""Structural schemas of custom resources: pruning, defaulting, and the unknown fields strict validation rejects."""

from __future__ import annotations

import json
import urllib.request

from sentryroute.kube import KubeEmulator
from sentryroute.kube.schemas import prune_and_default, unknown_fields

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "size": {"type": "integer", "default": 1},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "ports": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"port": {"type": "integer"}, "tls": {"default": False}}},
                },
                "options": {"type": "object", "properties": {"verbose": {"type": "boolean", "default": False}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "metadata": {"type": "object"},
    },
}


def test_prune_and_default():
    value = {
        "metadata": {"anything": "kept"},
        "spec": {"typo": 1, "labels": {"a": "b"}, "ports": [{"port": 80, "proto": "x"}], "free": {"any": {"x": 1}}},
        "extra": True,
    }
    assert prune_and_default(SCHEMA, value) == {
        "metadata": {"anything": "kept"},
        "spec": {"size": 1, "labels": {"a": "b"}, "ports": [{"port": 80, "tls": False}], "free": {"any": {"x": 1}}},
    }  # a default never creates its parent: no `options` appears


def test_unknown_fields_are_the_pruned_ones():
    value = {"spec": {"typo": 1, "ports": [{"port": 80}, {"proto": "x"}], "free": {"any": 1}}, "extra": True}
    assert unknown_fields(SCHEMA, value) == ["spec.typo", "spec.ports[1].proto", "extra"]


def test_openapi_v3_describes_kinds_for_kubectl(kube: KubeEmulator, widgets: None):
    def get(path: str) -> dict:
        with urllib.request.urlopen(kube.url + path, timeout=10) as answer:
            return json.loads(answer.read())

    root = get("/openapi/v3")["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/example.dev/v1"} <= root.keys()
    document = get(root["apis/example.dev/v1"]["serverRelativeURL"])
    patch = document["paths"]["/apis/example.dev/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "fieldValidation" in {parameter["name"] for parameter in patch["parameters"]}  # so kubectl validates here
    assert patch["x-kubernetes-group-version-kind"] == {"group": "example.dev", "version": "v1", "kind": "Widget"}
    assert "dev.example.v1.Widget" in document["components"]["schemas"]

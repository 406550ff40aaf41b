"""Server-side printing: the JSONPath subset of printer columns, ages, and Table answers to kubectl's Accept."""

from __future__ import annotations

import datetime
import json
import urllib.request

import pytest

from sentryroute.kube import KubeEmulator
from sentryroute.kube.tables import human_age, jsonpath_values
from tests.kube.helpers import WIDGET_CRD

ROUTE = {
    "spec": {"attribute": "service.name"},
    "status": {
        "projects": [{"value": "a"}, {"value": "b"}],
        "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.attribute", ["service.name"]),
        (".spec.missing", []),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type=='Nope')].status", []),
        (".status.projects[1].value", ["b"]),
        (".status.projects[*].value", ["a", "b"]),
        (".status.projects[5].value", []),
        (".status..weird", []),  # beyond the subset: an empty cell, not an error
    ],
)
def test_jsonpath_subset(path: str, expected: list[object]):
    assert jsonpath_values(ROUTE, path) == expected


def test_human_age():
    now = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    assert human_age("2026-01-01T23:59:30Z", now=now) == "30s"
    assert human_age("2026-01-01T23:00:00Z", now=now) == "60m"
    assert human_age("2026-01-01T00:00:00Z", now=now) == "24h"
    assert human_age("2025-12-01T00:00:00Z", now=now) == "32d"
    assert human_age("yesterday", now=now) == "<invalid>"


def test_tables_render_printer_columns(kube: KubeEmulator):
    crd = json.loads(json.dumps(WIDGET_CRD))
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    kube.apply(crd)
    kube.apply({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    request = urllib.request.Request(f"{kube.url}/apis/example.dev/v1/widgets", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        table = json.loads(response.read())
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:2] == ["w", 3] and row["object"]["metadata"]["namespace"] == "default"

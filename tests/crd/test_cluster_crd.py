"""The ClusterSentryRoute CRD (SPEC §2.1): generated from the SentryRoute CRD and up to date, cluster-scoped, the
same schema plus `namespaceSelector`, accepted by the Kubernetes CRD schema; its patterns and CEL rules are the
SentryRoute CRD's (tested with RE2 and cel-python in test_patterns.py / test_cel.py), checked here by value."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.crd.schema_tools import load_crd, open_api_schema, walk
from tests.crd.test_cel import CASES, evaluate

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = runpy.run_path(str(ROOT / "scripts" / "cluster_crd.py"))
CLUSTER_PATH = ROOT / "deploy" / "crds" / "clustersentryroute.yaml"


def load_cluster_crd() -> dict[str, Any]:
    (crd,) = [doc for doc in yaml.safe_load_all(CLUSTER_PATH.read_text(encoding="utf-8")) if doc]
    return crd


def test_the_file_is_generated_and_up_to_date():
    assert CLUSTER_PATH.read_text(encoding="utf-8") == GENERATOR["render"](), "run scripts/sync-crds.sh"


def test_names_and_cluster_scope():
    crd = load_cluster_crd()
    assert crd["metadata"]["name"] == "clustersentryroutes.sentryroute.dev"
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["group"] == "sentryroute.dev"
    assert crd["spec"]["names"]["kind"] == "ClusterSentryRoute"
    assert crd["spec"]["names"]["shortNames"] == ["csroute"]


def test_the_spec_is_the_sentryroute_spec_plus_a_namespace_selector():
    cluster = open_api_schema(load_cluster_crd())["properties"]["spec"]["properties"]
    namespaced = open_api_schema(load_crd())["properties"]["spec"]["properties"]
    assert set(cluster) == set(namespaced) | {"namespaceSelector"}
    selector = cluster["namespaceSelector"]
    assert set(selector["properties"]) == {"matchLabels", "matchExpressions"}


def nodes_with(key: str, crd: dict[str, Any]) -> dict[str, Any]:
    return {path: node[key] for path, node in walk(open_api_schema(crd)) if key in node}


def test_patterns_and_rules_are_those_of_the_sentryroute_crd():
    for key in ("pattern", "x-kubernetes-validations"):
        namespaced = nodes_with(key, load_crd())
        cluster = nodes_with(key, load_cluster_crd())
        for path, value in cluster.items():
            source = path.replace(".spec.namespaceSelector", ".spec.autoProvision.podSelector")
            assert namespaced.get(source) == value, f"{path}: {key} differs from {source}"


@pytest.mark.parametrize(("value", "accepted"), CASES[".spec.autoProvision.podSelector.matchExpressions[]"])
def test_namespace_selector_expressions_rule(value: Any, accepted: bool):
    (rule,) = nodes_with("x-kubernetes-validations", load_cluster_crd())[".spec.namespaceSelector.matchExpressions[]"]
    assert evaluate(rule["rule"], value) is accepted


@pytest.mark.parametrize("kubernetes_version", ["1.30.0", "1.37.0"])
def test_kubernetes_accepts_the_crd(kubernetes_version: str):
    kubernetes_validate.validate(load_cluster_crd(), kubernetes_version, strict=True)

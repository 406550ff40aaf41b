#!/usr/bin/env python3
"""Generate deploy/crds/clustersentryroute.yaml from deploy/crds/sentryroute.yaml (SPEC §2.1).

A ClusterSentryRoute is the SentryRoute spec, cluster-scoped, plus an optional `namespaceSelector`; deriving it
keeps the two schemas from drifting apart. `scripts/sync-crds.sh` runs this before copying the CRDs into the
chart, and tests/crd/test_cluster_crd.py fails when the file is out of date.

Usage: python scripts/cluster_crd.py [--check]
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "deploy" / "crds" / "sentryroute.yaml"
TARGET = ROOT / "deploy" / "crds" / "clustersentryroute.yaml"

HEADER = """\
# ClusterSentryRoute: a SentryRoute for platform teams, cluster-scoped, across namespaces (SPEC §2.1).
# GENERATED from sentryroute.yaml by scripts/cluster_crd.py (run scripts/sync-crds.sh); do not edit by hand.
"""


def _namespaced_to_covered(text: str) -> str:
    return (
        text.replace("of this namespace", "of the covered namespaces")
        .replace("this namespace", "the covered namespaces")
        .replace("SentryRoute routes", "ClusterSentryRoute routes")
    )


def _reword(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = _namespaced_to_covered(value)
            else:
                _reword(value)
    elif isinstance(node, list):
        for item in node:
            _reword(item)


def cluster_crd(source: dict[str, Any]) -> dict[str, Any]:
    crd = copy.deepcopy(source)
    crd["metadata"]["name"] = "clustersentryroutes.sentryroute.dev"
    spec = crd["spec"]
    spec["scope"] = "Cluster"
    spec["names"] = {
        "kind": "ClusterSentryRoute",
        "listKind": "ClusterSentryRouteList",
        "plural": "clustersentryroutes",
        "singular": "clustersentryroute",
        "shortNames": ["csroute"],
    }
    (version,) = spec["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    _reword(schema)
    schema["description"] = (
        "ClusterSentryRoute routes the OpenTelemetry traces and logs of services in many namespaces to Sentry "
        "projects (the SentryRoute spec plus a namespaceSelector); creating one needs cluster-level RBAC. A "
        "namespace's own SentryRoutes come first in the routes table."
    )
    properties = schema["properties"]["spec"]["properties"]
    selector = copy.deepcopy(properties["autoProvision"]["properties"]["podSelector"])
    selector["description"] = (
        "The namespaces (by their labels) whose telemetry this route covers; absent: every namespace, with "
        "cluster-wide entries that also match telemetry of no known namespace."
    )
    for name, child in selector["properties"].items():
        child["description"] = child["description"].replace("a pod", "a namespace")
        if name == "matchExpressions":
            child["description"] = "Requirements a namespace's labels must all meet."
    properties["namespaceSelector"] = selector
    properties["autoProvision"]["properties"]["projectTemplate"]["description"] = (
        "Name of a new project; the placeholder {service} is replaced and the result goes through the slug "
        "function. {namespace} is refused here (InvalidSpec): a ClusterSentryRoute's projects are cluster-wide."
    )
    properties["connection"]["description"] = (
        "Name of an operator-configured Sentry connection (organization and credentials); a ClusterSentryRoute "
        "may use any connection (allowedNamespaces restricts SentryRoutes only)."
    )
    return crd


def render() -> str:
    (source,) = [doc for doc in yaml.safe_load_all(SOURCE.read_text(encoding="utf-8")) if doc]
    body = yaml.safe_dump(cluster_crd(source), sort_keys=False, width=110, allow_unicode=True)
    return HEADER + body


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run scripts/sync-crds.sh", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""What creating a CustomResourceDefinition does in a real cluster: serve its resource, report it established.

kmock never reads CRDs; a real API server starts serving `/apis/GROUP/VERSION/PLURAL` (and lists it in
discovery, which kopf and kubectl read) as soon as the CRD is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kmock

from sentryroute.kube.objects import ApiError, now_timestamp

__all__ = ["CRD_RESOURCE", "established_status", "served_resources", "served_versions"]

CRD_RESOURCE = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}


def served_resources(crd: Mapping[str, Any]) -> dict[kmock.resource, kmock.ResourceInfo]:
    """The resources a CRD serves, one per served version, as kmock discovery entries; 422 if malformed."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not (isinstance(group, str) and isinstance(plural, str) and isinstance(kind, str) and group and plural):
        raise ApiError(422, "Invalid", "spec.group, spec.names.plural and spec.names.kind are required")
    expected_name = f"{plural}.{group}"
    if (crd.get("metadata") or {}).get("name") != expected_name:
        raise ApiError(422, "Invalid", f"metadata.name: Invalid value: must be <plural>.<group>: {expected_name!r}")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        raise ApiError(422, "Invalid", "spec.scope: Unsupported value: must be 'Namespaced' or 'Cluster'")
    return {
        kmock.resource(group, version["name"], plural): kmock.ResourceInfo(
            kind=kind,
            namespaced=spec["scope"] == "Namespaced",
            singular=names.get("singular") or kind.lower(),
            shortnames=names.get("shortNames") or (),
            categories=names.get("categories") or (),
            subresources=(version.get("subresources") or {}).keys(),
            verbs=_VERBS,
        )
        for version in spec.get("versions") or ()
        if version.get("served", True)
    }


def served_versions(crd: Mapping[str, Any]) -> dict[kmock.resource, dict[str, Any]]:
    """Each served version's entry of the CRD (its schema and printer columns), by resource."""
    spec = crd.get("spec") or {}
    plural = (spec.get("names") or {}).get("plural")
    return {
        kmock.resource(spec.get("group"), version["name"], plural): dict(version)
        for version in spec.get("versions") or ()
        if version.get("served", True)
    }


def established_status(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The status the apiextensions controller writes once the names are accepted and the resource served."""
    spec = crd.get("spec") or {}
    now = now_timestamp()
    conditions = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "names accepted"},
    ]
    return {
        "acceptedNames": dict(spec.get("names") or {}),
        "conditions": [dict(condition, lastTransitionTime=now) for condition in conditions],
        "storedVersions": [version["name"] for version in spec.get("versions") or () if version.get("storage")],
    }

"""A minimal OpenAPI v3 (`/openapi/v3`), enough for kubectl: `kubectl explain` of custom resources, and
`kubectl apply` without `--validate=false`.

kubectl validates server-side when a group-version's OpenAPI document shows `fieldValidation` on the PATCH
operation of the kind; otherwise it downloads schemas to validate itself and fails when there are none. So every
declared kind gets such an operation, and custom kinds also get their CRD schema (for explain). Built-in kinds
have no schemas here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import kmock

__all__ = ["group_version_document", "group_version_path", "root_document"]

_QUERY_NAMES = ("fieldValidation", "fieldManager", "dryRun")


def group_version_path(group: str, version: str) -> str:
    """`api/v1` or `apis/GROUP/VERSION`, the keys of the OpenAPI v3 root document."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def group_version_document(
    group: str,
    version: str,
    kinds: Iterable[tuple[kmock.resource, kmock.ResourceInfo, Mapping[str, Any] | None]],
) -> dict[str, Any]:
    """The OpenAPI v3 document of one group-version: a PATCH operation per kind, and the schemas known."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for resource, info, schema in kinds:
        gvk = {"group": group, "version": version, "kind": info.kind}
        base = f"/{group_version_path(group, version)}"
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        paths[f"{base}{scope}/{resource.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{info.kind}",
                "parameters": [{"name": name, "in": "query", "schema": {"type": "string"}} for name in _QUERY_NAMES],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            }
        }
        if schema is not None:
            schemas[_schema_name(group, version, str(info.kind))] = dict(
                schema, **{"x-kubernetes-group-version-kind": [gvk]}
            )
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (emulated)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root_document(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`/openapi/v3`: each group-version's URL, with a content hash so kubectl's cache notices changes."""
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(document)}"}
            for path, document in sorted(documents.items())
        }
    }


def _schema_name(group: str, version: str, kind: str) -> str:
    """Kubernetes names schemas by the reversed group: `dev.sentryroute.v1alpha1.SentryRoute`."""
    prefix = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
    return f"{prefix}.{version}.{kind}"


def _hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32].upper()

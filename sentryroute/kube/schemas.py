"""Structural-schema pruning and defaulting of custom resources, as the API server applies them on every write.

An operator in a real cluster reads `spec.attribute: service.name` even when the user omitted it, and never
sees a field the CRD does not declare; tests of that operator against the emulator should see the same.
Validation is in validation.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["prune_and_default", "unknown_fields"]


def prune_and_default(schema: Mapping[str, Any], value: Any) -> Any:
    """`value` without the fields `schema` does not declare, then with the declared defaults of absent fields.

    Only fields of objects that exist are defaulted (a default never creates its parent), as in Kubernetes.
    """
    return _default(schema, _prune(schema, value))


def unknown_fields(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """The paths pruning would drop: what `fieldValidation=Strict` (kubectl's default) rejects."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            child = _child_schema(schema, key)
            if child is None:
                if not _keeps_unknown(schema):
                    found.append(f"{path}.{key}".lstrip("."))
            else:
                found += unknown_fields(child, item, f"{path}.{key}")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [
            field
            for index, item in enumerate(value)
            for field in unknown_fields(schema["items"], item, f"{path}[{index}]")
        ]
    return []


def _child_schema(schema: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    if key in properties:
        return properties[key]
    return additional if isinstance(additional, Mapping) else None


def _keeps_unknown(schema: Mapping[str, Any]) -> bool:
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties") is True:
        return True
    # `type: object` with nothing declared (like metadata) is left as it is.
    return not schema.get("properties") and "additionalProperties" not in schema and schema.get("type") == "object"


def _prune(schema: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {}
        for key, item in value.items():
            child = _child_schema(schema, key)
            if child is not None:
                pruned[key] = _prune(child, item)
            elif _keeps_unknown(schema):
                pruned[key] = item
        return pruned
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_prune(schema["items"], item) for item in value]
    return value


def _default(schema: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, child in properties.items():
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                value[key] = _default(child, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in value.keys() - properties.keys():
                value[key] = _default(additional, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_default(schema["items"], item) for item in value]
    return value

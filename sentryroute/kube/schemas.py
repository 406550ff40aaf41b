"""Structural-schema pruning and defaulting of custom resources, as the API server applies them on every write.

An operator in a real cluster reads `spec.attribute: service.name` even when the user omitted it, and never
sees a field the CRD does not declare; tests of that operator against the emulator should see the same.
Validation (types, patterns, CEL) is not emulated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["prune_and_default"]


def prune_and_default(schema: Mapping[str, Any], value: Any) -> Any:
    """`value` without the fields `schema` does not declare, then with the declared defaults of absent fields.

    Only fields of objects that exist are defaulted (a default never creates its parent), as in Kubernetes.
    """
    return _default(schema, _prune(schema, value))


def _prune(schema: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or additional is True
        if not properties and not isinstance(additional, Mapping) and schema.get("type") == "object":
            keep_unknown = True  # `type: object` alone (like metadata) is left as it is
        pruned = {}
        for key, item in value.items():
            if key in properties:
                pruned[key] = _prune(properties[key], item)
            elif isinstance(additional, Mapping):
                pruned[key] = _prune(additional, item)
            elif keep_unknown:
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

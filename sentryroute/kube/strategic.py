"""Strategic merge patch, the default of `kubectl apply` and of the `kubernetes` client for built-in kinds.

Unlike a JSON merge patch, it merges lists of objects by a key (containers by `name`, ports by
`containerPort`, ...), unions `finalizers`, and understands the `$patch`, `$retainKeys`,
`$deleteFromPrimitiveList/...` and `$setElementOrder/...` directives. The real server reads merge keys from the
Go types; the table below covers the lists of the kinds this project touches (Pods, Deployments, Services,
ConfigMaps, Secrets, RBAC). Other lists are replaced, as a merge patch would.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["strategic_merge_patch"]

_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "resourceClaims": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
_UNION_LISTS = {"finalizers"}  # lists of strings merged as sets
_DIRECTIVE = "$patch"


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied; None when the patch says `$patch: delete` for it."""
    if not isinstance(patch, Mapping):
        return _without_directives(patch)
    if patch.get(_DIRECTIVE) == "delete":
        return None
    if patch.get(_DIRECTIVE) == "replace":
        return _without_directives(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key == _DIRECTIVE or key == "$retainKeys" or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or () if item not in value]
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif (merged := strategic_merge_patch(result.get(key), value)) is None:
            result.pop(key, None)
        else:
            result[key] = merged
    if isinstance(patch.get("$retainKeys"), list):
        result = {key: value for key, value in result.items() if key in patch["$retainKeys"]}
    return result


def _merge_list(field: str, old: list[Any], patch: list[Any]) -> list[Any]:
    if field in _UNION_LISTS:
        return old + [item for item in patch if item not in old]
    key = _merge_key(field, old + patch)
    if key is None:
        return _without_directives(patch)
    merged = copy.deepcopy(old)
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            merged.append(_without_directives(item))
            continue
        index = next(
            (i for i, current in enumerate(merged) if isinstance(current, Mapping) and current.get(key) == item[key]),
            None,
        )
        if item.get(_DIRECTIVE) == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_without_directives(item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _key_of(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else None


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, Mapping) for item in items):
        return None
    if field == "ports":  # container ports merge by containerPort, Service ports by port
        return "containerPort" if any("containerPort" in item for item in items) else "port"
    return _MERGE_KEYS.get(field)


def _without_directives(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: _without_directives(item)
            for key, item in value.items()
            if not key.startswith("$") and item is not None
        }
    if isinstance(value, list):
        return [_without_directives(item) for item in value]
    return copy.deepcopy(value)

"""OpenAPI v3 validation of custom resources, the checks a real API server makes before storing them.

Types, `enum`, `pattern`, lengths, sizes, bounds and `required`: an operator whose status write breaks its own
CRD's schema (a 300-character value in a `maxLength: 255` field, a state outside the enum) is rejected with 422
in a real cluster, and here too. CEL rules (`x-kubernetes-validations`) are not evaluated: cel-python is a
test-only dependency (tests/crd/test_cel.py checks the rules themselves).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["validation_errors"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def validation_errors(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Kubernetes-style messages (`spec.x: Unsupported value: ...`), empty when `value` fits `schema`."""
    where = path.lstrip(".") or "<root>"
    if value is None:
        return [] if schema.get("nullable") else [f'{where}: Invalid value: "null": {where} in body must not be null']
    wanted = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            return [f"{where}: Invalid value: {_show(value)}: {where} in body must be of type int-or-string"]
    elif wanted in _TYPES and (not isinstance(value, _TYPES[wanted]) or _is_bool_for_number(wanted, value)):
        return [f"{where}: Invalid value: {_show(value)}: {where} in body must be of type {wanted}"]
    errors = _scalar_errors(schema, value, where)
    if isinstance(value, dict):
        errors += _object_errors(schema, value, path, where)
    elif isinstance(value, list):
        errors += _size_errors(schema, len(value), where, "items", "minItems", "maxItems")
        if isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                errors += validation_errors(schema["items"], item, f"{path}[{index}]")
    return errors


def _scalar_errors(schema: Mapping[str, Any], value: Any, where: str) -> list[str]:
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(option) for option in schema["enum"])
        errors.append(f"{where}: Unsupported value: {_show(value)}: supported values: {allowed}")
    if isinstance(value, str):
        errors += _size_errors(schema, len(value), where, "characters", "minLength", "maxLength")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body should match '{schema['pattern']}'")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: Invalid value: {value}: {where} in body should be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: Invalid value: {value}: {where} in body should be <= {schema['maximum']}")
    return errors


def _object_errors(schema: Mapping[str, Any], value: dict[str, Any], path: str, where: str) -> list[str]:
    errors = _size_errors(schema, len(value), where, "properties", "minProperties", "maxProperties")
    errors += [
        f"{path}.{name}".lstrip(".") + ": Required value" for name in schema.get("required", ()) if name not in value
    ]
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        child = properties.get(key, additional if isinstance(additional, Mapping) else None)
        if child is not None:
            errors += validation_errors(child, item, f"{path}.{key}")
    return errors


def _size_errors(schema: Mapping[str, Any], size: int, where: str, unit: str, low: str, high: str) -> list[str]:
    if low in schema and size < schema[low]:
        return [f"{where}: Invalid value: {size}: {where} in body should have at least {schema[low]} {unit}"]
    if high in schema and size > schema[high]:
        return [f"{where}: Too long: may not be more than {schema[high]} {unit}"]
    return []


def _is_bool_for_number(wanted: str, value: Any) -> bool:
    return wanted in ("integer", "number") and isinstance(value, bool)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)

"""Server-side printing: `meta.k8s.io/v1` Table answers, so `kubectl get` shows a CRD's printer columns.

kubectl asks for `Accept: application/json;as=Table;...`; a real API server then renders the columns of
`additionalPrinterColumns` (JSONPath) itself. Built-in kinds get the generic Name and Age columns here (a real
server has richer ones per kind).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_COLUMNS", "as_table", "human_age", "jsonpath_values", "wants_table"]

DEFAULT_COLUMNS: list[dict[str, Any]] = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
_NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}
_TOKEN_RE = re.compile(
    r"\.(?P<field>[A-Za-z0-9_-]+)"
    r"|\[\?\(@\.(?P<filter>[A-Za-z0-9_.-]+)\s*==\s*[\"'](?P<equals>[^\"']*)[\"']\)\]"
    r"|\[(?P<index>[0-9]+)\]"
    r"|\[\*\]"
)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath_values(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`."""
    values, position = [obj], 0
    while position < len(path):
        token = _TOKEN_RE.match(path, position)
        if token is None:
            return []  # an expression beyond the subset shows an empty cell rather than failing the listing
        position = token.end()
        if token["field"] is not None:
            values = [
                value[token["field"]] for value in values if isinstance(value, Mapping) and token["field"] in value
            ]
        elif token["filter"] is not None:
            values = [
                item
                for value in values
                if isinstance(value, Sequence) and not isinstance(value, str)
                for item in value
                if jsonpath_values(item, f".{token['filter']}") == [token["equals"]]
            ]
        elif token["index"] is not None:
            index = int(token["index"])
            values = [value[index] for value in values if isinstance(value, list) and index < len(value)]
        else:
            values = [item for value in values if isinstance(value, list) for item in value]
    return values


def human_age(timestamp: str, *, now: datetime.datetime | None = None) -> str:
    """`5m`, `3h`, `2d`: roughly kubectl's rendering of an age."""
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.datetime.now(tz=datetime.UTC)) - then).total_seconds())
    for limit, unit, size in ((120, "s", 1), (180 * 60, "m", 60), (48 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{max(seconds, 0) // size}{unit}"
    return f"{seconds // 86400}d"


def as_table(
    objects: list[dict[str, Any]],
    *,
    columns: list[dict[str, Any]] | None,
    resource_version: str,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A Table of `objects` with the Name column, then `columns` (printer columns) or Age."""
    columns = columns or DEFAULT_COLUMNS
    definitions = [_NAME_COLUMN] + [
        {
            "name": column["name"],
            "type": column.get("type", "string"),
            "format": column.get("format", ""),
            "description": column.get("description", ""),
            "priority": column.get("priority", 0),
        }
        for column in columns
    ]
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "Table",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": [_row(obj, columns, include_object) for obj in objects],
    }


def _row(obj: dict[str, Any], columns: list[dict[str, Any]], include_object: str) -> dict[str, Any]:
    cells: list[Any] = [obj.get("metadata", {}).get("name")]
    for column in columns:
        values = jsonpath_values(obj, column["jsonPath"])
        if not values:
            cells.append(None)
        elif column.get("type") == "date" and isinstance(values[0], str):
            cells.append(human_age(values[0]))
        elif len(values) == 1:
            cells.append(values[0])
        else:
            cells.append(",".join(str(value) for value in values))
    if include_object == "None":
        return {"cells": cells}
    if include_object == "Object":
        return {"cells": cells, "object": obj}
    metadata = {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj.get("metadata", {})}
    return {"cells": cells, "object": metadata}

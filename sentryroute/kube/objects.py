"""Pieces of Kubernetes object semantics that do not depend on HTTP: errors, patches, timestamps.

The emulator in `emulator.py` composes these; they are separate so each rule can be read (and tested) on
its own.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Mapping
from typing import Any

import jsonpatch

__all__ = [
    "ApiError",
    "api_version_of",
    "apply_json_patch",
    "check_name",
    "merge_patch",
    "meta_of",
    "now_timestamp",
    "object_body",
    "spec_view",
]

_PATH_SEGMENT_RE = re.compile(r"[^/%]+")


class ApiError(Exception):
    """An error the API server reports as a `Status` object (what clients turn into `ApiException`)."""

    def __init__(self, code: int, reason: str, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def now_timestamp() -> str:
    """RFC 3339 with second precision in UTC, the format of `creationTimestamp`."""
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, `null` removes a key, anything else replaces.

    kmock's own merge refuses to replace a dict by a scalar; the real API server does not.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_json_patch(target: Mapping[str, Any], operations: list[Any]) -> dict[str, Any]:
    """RFC 6902 JSON patch; a failed `test` (kopf's optimistic lock) or a bad path is 422, as in Kubernetes."""
    try:
        result = jsonpatch.apply_patch(copy.deepcopy(dict(target)), operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise ApiError(422, "Invalid", f"the JSON patch cannot be applied: {exc}") from exc
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "a JSON patch must leave an object at the root")
    return result


def spec_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that bumps `metadata.generation` when it changes: all but metadata and status."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


def check_name(name: Any, *, what: str = "name") -> str:
    """Reject names that cannot be one URL path segment (the API server's own minimum rule)."""
    if not isinstance(name, str) or not _PATH_SEGMENT_RE.fullmatch(name) or name in (".", "..") or len(name) > 253:
        raise ApiError(422, "Invalid", f"metadata.{what}: Invalid value: {name!r}: not a valid path segment")
    return name


def object_body(body: Any) -> dict[str, Any]:
    """A deep copy of a request body that must be an object with an object (or nothing) in `metadata`; else 400."""
    if not isinstance(body, Mapping) or not isinstance(body.get("metadata", {}), Mapping):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object with an object in metadata")
    obj = copy.deepcopy(dict(body))
    obj["metadata"] = dict(obj.get("metadata") or {})
    return obj


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """`obj.metadata`, or an empty mapping when it is missing or malformed."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def api_version_of(resource: Any) -> str:
    """`group/version`, or just `version` for the core group."""
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)

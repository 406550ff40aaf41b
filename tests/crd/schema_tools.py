"""Reading the SentryRoute CRD the way the tests need it: its schema, every node in it, and a strict variant."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CRD_PATH = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "sentryroute.yaml"


def load_crd() -> dict[str, Any]:
    (crd,) = [doc for doc in yaml.safe_load_all(CRD_PATH.read_text(encoding="utf-8")) if doc]
    return crd


def open_api_schema(crd: dict[str, Any] | None = None) -> dict[str, Any]:
    (version,) = (crd or load_crd())["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a readable path: `.spec.mapping[*]`, `.spec.autoProvision.podSelector...[]`."""
    yield path or ".", schema
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}[*]")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields rejected, as `kubectl apply --validate=strict` does (the API server prunes
    them otherwise); `metadata` and nodes with `x-kubernetes-preserve-unknown-fields` stay open."""
    strict = copy.deepcopy(schema)
    for _, node in walk(strict):
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
    strict["properties"]["metadata"] = {"type": "object"}
    return strict

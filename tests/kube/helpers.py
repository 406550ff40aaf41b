"""Shared test material: an example CRD and polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# kubernetes 37 types its API methods with its models, but takes and returns plain dicts at runtime, which is
# how these tests (and most users) call it: the API fixtures are typed loosely on purpose.
CoreApi = Any  # kubernetes.client.CoreV1Api
CustomApi = Any  # kubernetes.client.CustomObjectsApi

WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL = "example.dev", "v1", "widgets"
WIDGETS = f"{WIDGET_GROUP}/{WIDGET_VERSION}/{WIDGET_PLURAL}"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def eventually(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns a truthy value without raising; generous timeouts keep it robust under load."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"still falsy after {timeout}s: {result!r}")
        time.sleep(interval)

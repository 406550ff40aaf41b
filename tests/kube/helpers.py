"""Shared test material: an example CRD and polling."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sentryroute.kube import KubeEmulator

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


Kubectl = Callable[..., str]
_REPO = Path(__file__).resolve().parents[2]


def kubectl_for(kube: KubeEmulator) -> Kubectl:
    """`run(*args, stdin=None) -> stdout` for kubectl against `kube`; skips the test when kubectl is absent.

    Prefers the npm-layer kubectl under .tools/ (docs/testing-without-a-cluster.md) over one on PATH.
    """
    bundled = _REPO / ".tools" / "kubectl" / "kubectl"
    binary = str(bundled) if bundled.is_file() and os.access(bundled, os.X_OK) else shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed (bash scripts/install-tools.sh installs it)")

    cache = tempfile.mkdtemp(prefix="kubectl-cache-")  # not ~/.kube/cache: every emulator has a new port

    def run(*args: str, stdin: str | None = None) -> str:
        command = [binary, f"--kubeconfig={kube.kubeconfig_path}", f"--cache-dir={cache}", *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run

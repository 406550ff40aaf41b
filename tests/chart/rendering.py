"""Run the real helm and kubectl binaries (installed into `.tools/` by scripts/install-tools.sh) on the chart.

Outside CI a missing `.tools/` skips the chart tests with a reason; in CI (`CI=true`) it fails them, so a
broken install step cannot turn the chart gate green.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "sentryroute"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
#: The least a user must set (an organisation and its token's Secret): "the chart's defaults" in these tests.
MINIMAL_VALUES = CHART / "ci" / "minimal-values.yaml"
#: Pass as `values_file` to render with no values at all (which must fail and say what to set).
NO_VALUES = Path("/dev/null")
TOOLS = REPO / ".tools"
NAMESPACE = "observability"
RELEASE = "sr"

Manifest = dict[str, Any]


def tool(name: str) -> Path:
    """Path of `.tools/<name>/<name>`; skips the test (fails it in CI) when it is not installed."""
    path = TOOLS / name / name
    if not os.access(path, os.X_OK):
        message = f"{path.relative_to(REPO)} is missing: run scripts/install-tools.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, timeout=60, check=False)


def template_args(values_file: Path | None, overrides: Sequence[str]) -> list[str]:
    """`values_file` None means the minimal values; NO_VALUES means none at all."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
    if values_file is None:
        values_file = MINIMAL_VALUES
    if values_file != NO_VALUES:
        args += ["--values", str(values_file)]
    for override in overrides:
        args += ["--set", override]
    return args


@functools.cache
def render(values_file: Path | None = None, overrides: tuple[str, ...] = ()) -> tuple[Manifest, ...]:
    """The chart's rendered objects (CRDs included) for a values file and `--set` overrides; fails on errors."""
    result = run_helm(*template_args(values_file, overrides))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render_error(values_file: Path | None = None, overrides: tuple[str, ...] = ()) -> str:
    """helm's error message for a rendering that must fail."""
    result = run_helm(*template_args(values_file, overrides))
    assert result.returncode != 0, f"rendering unexpectedly succeeded with {overrides}"
    return result.stderr


def find(manifests: Sequence[Manifest], kind: str, name_suffix: str = "") -> list[Manifest]:
    """Objects of `kind` whose name ends with `name_suffix`."""
    return [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(name_suffix)]


def one(manifests: Sequence[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = find(manifests, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, found {[m['metadata']['name'] for m in found]}"
    return found[0]


def workload(manifests: Sequence[Manifest], component: str) -> Manifest:
    """The Deployment or StatefulSet of `component` (operator or forwarder)."""
    found = [
        m for m in manifests if m["kind"] in ("Deployment", "StatefulSet") and m["metadata"]["name"].endswith(component)
    ]
    assert len(found) == 1, f"expected one workload for {component}"
    return found[0]


def env_of(container: Manifest) -> dict[str, Any]:
    """A container's env as name → value (or the valueFrom mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def container_env(manifest: Manifest, *, pod_name: str) -> dict[str, str]:
    """The workload container's environment as the kubelet would set it (downward API resolved, HOSTNAME set)."""
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    env = {"HOSTNAME": pod_name}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, item
            env[item["name"]] = manifest["metadata"]["namespace"]
    return env


VALUE_SETS = [pytest.param(f, id=f.stem) for f in CI_VALUES]

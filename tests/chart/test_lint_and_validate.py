"""`helm lint --strict` and strict schema validation of every rendering (default and ci/*-values.yaml)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import kubernetes_validate
import pytest

from tests.chart.rendering import CHART, VALUE_SETS, render, render_error, run_helm

KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
# Custom resources of other projects: kubernetes-validate has no schema for them, so only their shape is checked.
SCHEMALESS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("kopf.dev/v1", "ClusterKopfPeering")}


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_helm_lint_strict(values_file: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["--values", str(values_file)] if values_file else [])
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_rendered_objects_match_the_kubernetes_schema(values_file: Path | None, version: str) -> None:
    manifests = render(values_file)
    assert manifests
    for manifest in manifests:
        if (manifest["apiVersion"], manifest["kind"]) in SCHEMALESS:
            assert manifest["metadata"]["name"] and isinstance(manifest.get("spec", {}), dict)
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{manifest['kind']}/{manifest['metadata']['name']} on {version}: {exc.message} at {list(exc.path)}"
            )


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ("forwarder.replica=3", "additional properties 'replica' not allowed"),
        ("operator.settings.autoCreat=true", "additional properties 'autoCreat' not allowed"),
        ("forwarder.routes.source=api", "forwarder/routes/source"),
        ("forwarder.shutdownTimeout=20", "forwarder/shutdownTimeout"),
        ("operator.replicas=2", "operator/replicas"),
    ],
)
def test_schema_rejects_typos_and_bad_values(override: str, complaint: str) -> None:
    assert complaint in render_error(overrides=(override,))


def test_lint_fails_on_a_typo_too() -> None:
    result = run_helm("lint", "--strict", str(CHART), "--set", "forwarder.persistance.enabled=true")
    assert result.returncode != 0
    assert "persistance" in result.stdout + result.stderr


def test_chart_packages_with_its_crds(tmp_path: Path) -> None:
    result = run_helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("sentryroute-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"sentryroute/Chart.yaml", "sentryroute/values.schema.json", "sentryroute/crds/sentryroute.yaml"} <= names

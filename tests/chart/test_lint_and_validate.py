"""`helm lint --strict` and strict schema validation of every rendering (ci/*-values.yaml, minimal-values.yaml being
the least a user must set), and the message a user gets when the required values are missing."""

from __future__ import annotations

import tarfile
from pathlib import Path

import kubernetes_validate
import pytest

from tests.chart.rendering import CHART, MINIMAL_VALUES, NO_VALUES, VALUE_SETS, render, render_error, run_helm

KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
# Custom resources of other projects: kubernetes-validate has no schema for them, so only their shape is checked.
SCHEMALESS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("kopf.dev/v1", "ClusterKopfPeering"),
}


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_helm_lint_strict(values_file: Path) -> None:
    result = run_helm("lint", "--strict", str(CHART), "--values", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "what_to_set"),
    [
        ("", "set orgSlug, the Sentry organisation slug"),
        ("sentry: {connections: [{name: default, orgSlug: acme}]}", "set existingSecret, the name of a Secret"),
        (
            "sentry: {connections: [{name: a, orgSlug: acme, token: t}, {name: b, url: https://de.sentry.io}]}",
            'sentry.connections[1] (name "b"): set orgSlug',
        ),
    ],
)
def test_missing_organisation_or_token_fails_saying_what_to_set(tmp_path: Path, values: str, what_to_set: str) -> None:
    """`helm template` with no values (or a connection without orgSlug or token) must not render a broken release."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(values)
    message = render_error(values_file if values else NO_VALUES)
    assert what_to_set in message, message
    if "existingSecret" in what_to_set:
        assert "kubectl create secret generic" in message and "docs/helm.md" in message


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_rendered_objects_match_the_kubernetes_schema(values_file: Path, version: str) -> None:
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
        ("forwarder.limits.maxConnection=10", "additional properties 'maxConnection' not allowed"),
        ("forwarder.limits.decodeWorkers=0", "forwarder/limits/decodeWorkers"),
        ("forwarder.limits.maxConnectionAge=600", "forwarder/limits/maxConnectionAge"),
        ("forwarder.limits.maxJsonBytes=4 MiB", "forwarder/limits/maxJsonBytes"),
    ],
)
def test_schema_rejects_typos_and_bad_values(override: str, complaint: str) -> None:
    assert complaint in render_error(overrides=(override,))


def test_lint_fails_on_a_typo_too() -> None:
    result = run_helm(
        "lint", "--strict", str(CHART), "--set", "forwarder.persistance.enabled=true", "-f", str(MINIMAL_VALUES)
    )
    assert result.returncode != 0
    assert "persistance" in result.stdout + result.stderr


def test_chart_packages_with_its_crds(tmp_path: Path) -> None:
    result = run_helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("sentryroute-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"sentryroute/Chart.yaml", "sentryroute/values.schema.json", "sentryroute/crds/sentryroute.yaml"} <= names

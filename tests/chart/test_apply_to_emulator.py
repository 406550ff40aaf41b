"""The rendered chart goes through the real `kubectl apply` into the emulated Kubernetes API and reads back.

`helm install` cannot talk to the emulator (docs/testing-without-a-cluster.md), so this is the closest to an
install that runs here: kubectl's discovery, REST mapping and apply (create, then a no-op re-apply) on every object.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from sentryroute.kube import KubeEmulator
from tests.chart.rendering import NAMESPACE, VALUE_SETS, Manifest, render, tool

# Kinds from other projects' CRDs the chart may render; a cluster that uses those values has them installed.
STAND_IN_CRDS = {
    ("monitoring.coreos.com", "ServiceMonitor"): ("servicemonitors", "Namespaced"),
    ("monitoring.coreos.com", "PrometheusRule"): ("prometheusrules", "Namespaced"),
    ("kopf.dev", "ClusterKopfPeering"): ("clusterkopfpeerings", "Cluster"),
}


def stand_in_crd(group: str, kind: str) -> Manifest:
    plural, scope = STAND_IN_CRDS[(group, kind)]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def install_stages(manifests: Sequence[Manifest]) -> tuple[list[Manifest], list[Manifest]]:
    """What `helm install --create-namespace` creates, in two steps: first the namespace and the CRDs (the
    chart's, plus stand-ins for other projects' kinds it uses), then everything else once they are served."""
    crds = [m for m in manifests if m["kind"] == "CustomResourceDefinition"]
    defined = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds}
    needed = {(m["apiVersion"].split("/")[0], m["kind"]) for m in manifests} & STAND_IN_CRDS.keys()
    stand_ins = [stand_in_crd(group, kind) for group, kind in sorted(needed - defined)]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    rest = [m for m in manifests if m["kind"] != "CustomResourceDefinition"]
    return [namespace, *crds, *stand_ins], rest


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeEmulator]:
    with KubeEmulator(kubeconfig_path=tmp_path / "kubeconfig").running_in_thread() as emulator:
        yield emulator


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cache = kubeconfig.parent / "kubectl-cache"  # discovery cache per emulator: ports are reused across tests
    command = [
        str(tool("kubectl")),
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(cache),
        "--request-timeout=20s",
    ]
    command += args
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_kubectl_applies_the_rendered_chart(kube: KubeEmulator, values_file: Path | None) -> None:
    kubeconfig: Path = kube.kubeconfig_path
    manifests = render(values_file)
    for stage in install_stages(manifests):
        stream = yaml.safe_dump_all(stage, sort_keys=False)
        result = kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", stdin=stream)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(" created") == len(stage), result.stdout
        again = kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", stdin=stream)
        assert again.returncode == 0, again.stderr
        changed = [line for line in again.stdout.splitlines() if not line.endswith(" unchanged")]
        # kubectl always re-sends a PodDisruptionBudget's selector (its patch strategy is "replace"), on real
        # clusters too, so that one reports "configured"; anything else changing on re-apply is a bug.
        assert all(line.startswith("poddisruptionbudget.policy/") for line in changed), again.stdout

    # Read back through kubectl too: every rendered object is stored under its name, with its pod settings.
    for manifest in manifests:
        kind = manifest["kind"].lower()
        group, _, version = manifest["apiVersion"].rpartition("/")
        # KIND.VERSION.GROUP: the emulator converts nothing, so ask for the version the chart wrote.
        resource = f"{kind}.{version}.{group}" if group else kind
        namespace = manifest["metadata"].get("namespace")  # the release's, or another (grafanaDashboard.namespace)
        scope = ["--namespace", namespace] if namespace else []
        result = kubectl(kubeconfig, "get", *scope, resource, manifest["metadata"]["name"], "--output", "json")
        assert result.returncode == 0, result.stderr
        stored = json.loads(result.stdout)
        assert stored["kind"] == manifest["kind"]
        if kind in ("deployment", "statefulset"):
            assert stored["spec"]["template"]["spec"] == manifest["spec"]["template"]["spec"]

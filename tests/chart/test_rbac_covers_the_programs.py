"""The programs, configured exactly as the chart configures their containers, work within the chart's RBAC.

Each program runs as a subprocess with the environment and arguments the chart gives its container (listen
addresses moved to 127.0.0.1, mounted files to a temporary directory), against the emulated Kubernetes API (and
the Sentry emulator for the operator). The operator must provision a SentryRoute; the forwarder must load the
routes table and follow an update, from the mounted ConfigMap or through the API. Every API request either
makes is then authorised against the rendered Roles and ClusterRoles bound to its ServiceAccount. Set-up
writes go to the emulator in-process, so the recorded requests are the program's own.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentryroute.demo.stack import free_ports
from sentryroute.kube import KubeEmulator
from sentryroute.routes import compute_revision
from tests.chart.rbac import Access, access_of, denied, granted_rules
from tests.chart.rendering import CHART, NAMESPACE, Manifest, container_env, one, render, workload

emulator_module = pytest.importorskip("sentryroute.emulator", reason="the Sentry emulator is not written yet")
pytest.importorskip("sentryroute_operator.main", reason="the operator is not written yet")
pytest.importorskip("sentryroute_forwarder.main", reason="the forwarder is not written yet")

SENTRYROUTE = Path(sys.executable).parent / "sentryroute"
TOKEN = "sntryu_chartrbac0123456789abcdef0123456789abcdef0123456789abcdef"
ORG = "acme"


def eventually(check: Callable[[], Any], *, what: str, process: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if process.poll() is not None:
            pytest.fail(f"the program exited ({process.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeEmulator]:
    with KubeEmulator(kubeconfig_path=tmp_path / "kubeconfig").running_in_thread() as emulator:
        for crd in sorted((CHART / "crds").glob("*.yaml")):
            emulator.apply_file(crd)
        emulator.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        yield emulator


def requests_made(kube: KubeEmulator) -> list[Access]:
    """Every resource request the emulator served so far, as RBAC sees it."""

    def collect() -> list[Access]:
        accesses = (access_of(r.method.value, r.url.path, dict(r.url.query)) for r in kube.emulator)
        return [a for a in accesses if a is not None]

    return kube.call(collect)


def start(
    manifests: tuple[Manifest, ...], component: str, *, kube: KubeEmulator, tmp_path: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    """Run the component's container command with its rendered environment plus `env` (addresses, paths)."""
    manifest = workload(manifests, component)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    environment = {"PATH": os.environ["PATH"], "KUBECONFIG": str(kube.kubeconfig_path), "PYTHONUNBUFFERED": "1"}
    environment |= container_env(manifest, pod_name=f"{manifest['metadata']['name']}-0") | env
    args = [str(a) for a in container["args"]]
    if "--connections" in args:  # the mounted connections ConfigMap
        path = tmp_path / "connections.yaml"
        path.write_text(one(manifests, "ConfigMap", "-connections")["data"]["connections.yaml"])
        args[args.index("--connections") + 1] = str(path)
    log = tmp_path / f"{component}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(SENTRYROUTE), *args], env=environment, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_authorised(kube: KubeEmulator, manifests: tuple[Manifest, ...], component: str) -> list[Access]:
    account = workload(manifests, component)["spec"]["template"]["spec"]["serviceAccountName"]
    accesses = requests_made(kube)
    missing = denied(accesses, granted_rules(manifests, account, NAMESPACE))
    assert not missing, f"{component} RBAC denies: " + ", ".join(sorted({str(a) for a in missing}))
    return accesses


def seed_operator_world(kube: KubeEmulator, manifests: tuple[Manifest, ...]) -> None:
    """What exists before the operator starts: the token Secret, a SentryRoute, and in HA mode the peering."""
    for peering in [m for m in manifests if m["kind"] == "ClusterKopfPeering"]:
        kube.apply(peering)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sentry-token", "namespace": NAMESPACE},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
    }
    kube.apply(secret, namespace=NAMESPACE)
    # In the release namespace: the chart lets a connection serve only that one unless allowedNamespaces says more.
    route = {
        "apiVersion": "sentryroute.dev/v1alpha1",
        "kind": "SentryRoute",
        "metadata": {"name": "shop", "namespace": NAMESPACE},
        "spec": {"mapping": {"orders-service": "orders"}},
    }
    kube.apply(route, namespace=NAMESPACE)


def on_loopback(manifest: Manifest, *names: str) -> dict[str, str]:
    """The rendered listen settings `names`, moved from 0.0.0.0 to 127.0.0.1 (tests bind loopback only)."""
    env = container_env(manifest, pod_name="unused")
    return {name: env[name].replace("0.0.0.0", "127.0.0.1") for name in names}


@pytest.mark.parametrize("ha", [False, True], ids=["single", "ha"])
def test_operator_rbac_covers_what_the_operator_does(kube: KubeEmulator, tmp_path: Path, ha: bool) -> None:
    sentry = emulator_module.SentryEmulator(emulator_module.EmulatorConfig())
    with sentry.running_in_thread():
        sentry.state.add_org(ORG)
        sentry.state.add_team(ORG, "backend")
        sentry.state.add_project(ORG, "backend", "orders")
        sentry.state.add_token(scopes=("org:read", "project:read", "project:write"), value=TOKEN)
        overrides = (
            f"sentry.connections[0].name=default,sentry.connections[0].url={sentry.url}",
            f"sentry.connections[0].orgSlug={ORG},sentry.connections[0].existingSecret=sentry-token",
            "operator.livenessPort={},operator.metricsPort={}".format(*free_ports(2)),
            "operator.settings.newProjectWarmup=0s,operator.settings.reverifyInterval=1s",
            f"operator.ha.enabled={str(ha).lower()}",
        )
        manifests = render(None, overrides)
        seed_operator_world(kube, manifests)
        local = on_loopback(workload(manifests, "operator"), "SENTRYROUTE_LIVENESS", "SENTRYROUTE_METRICS")
        process, log = start(manifests, "operator", kube=kube, tmp_path=tmp_path, env=local)
        try:

            def routed() -> bool:
                configmap = kube.get("v1/configmaps", NAMESPACE, "sentryroute-routes")
                table = json.loads(((configmap or {}).get("data") or {}).get("routes.json") or "{}")
                return any(r.get("value") == "orders-service" for r in table.get("routes", []))

            def reported() -> bool:
                route = kube.get("sentryroute.dev/v1alpha1/sentryroutes", NAMESPACE, "shop") or {}
                conditions = (route.get("status") or {}).get("conditions") or []
                return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

            eventually(routed, what="the routes table", process=process, log=log)
            eventually(reported, what="the SentryRoute's Ready status", process=process, log=log)
        finally:
            stop(process)
    accesses = assert_authorised(kube, manifests, "operator")
    verbs = {(a.verb, a.resource) for a in accesses}
    assert ("patch", "sentryroutes/status") in verbs, sorted(verbs)
    assert ("get", "secrets") in verbs, "the token was not read from the Secret the chart names"
    assert TOKEN not in log.read_text(), "the Sentry token leaked into the operator's log"
    # docs/helm.md (Uninstall) tells users to remove this finalizer once the operator is gone.
    crd = kube.get("apiextensions.k8s.io/v1/customresourcedefinitions", None, "sentryroutes.sentryroute.dev") or {}
    assert "sentryroute.dev/finalizer" in crd.get("metadata", {}).get("finalizers", [])


def admin_page(port: int, path: str) -> str:
    """A page of the forwarder's admin listener, or "" while it does not answer 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return str(response.read().decode()) if response.status == 200 else ""
    except OSError:
        return ""


def routes_table(*, unrouted: str) -> tuple[str, str]:
    """A valid, empty routes table (SPEC §3) and its revision."""
    table: dict[str, Any] = {"version": 1, "routes": [], "projects": {}, "unrouted": unrouted}
    table["revision"] = compute_revision(table)
    return json.dumps(table), table["revision"]


class MountedConfigMap:
    """A directory laid out like the kubelet's ConfigMap volume: `routes.json -> ..data/routes.json`, with
    `..data` a symlink to a timestamped directory that an update replaces atomically (a new directory, then a
    rename of the symlink). This is why the chart never mounts the file with subPath."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.updates = 0
        directory.mkdir()
        (directory / "routes.json").symlink_to("..data/routes.json")

    def write(self, content: str) -> None:
        self.updates += 1
        version = self.directory / f"..2026_11_25_{self.updates:02d}"
        version.mkdir()
        (version / "routes.json").write_text(content)
        pending = self.directory / "..data_tmp"
        pending.symlink_to(version.name)
        os.replace(pending, self.directory / "..data")


@pytest.mark.parametrize("source", ["file", "configmap"])
def test_forwarder_follows_route_updates_within_its_rbac(kube: KubeEmulator, tmp_path: Path, source: str) -> None:
    first, _ = routes_table(unrouted="drop")
    second, second_revision = routes_table(unrouted="hold")
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "sentryroute-routes", "namespace": NAMESPACE},
        "data": {"routes.json": first},
    }
    kube.apply(configmap, namespace=NAMESPACE)
    mount = MountedConfigMap(tmp_path / "etc-sentryroute")
    mount.write(first)
    manifests = render(None, (f"forwarder.routes.source={source}",))
    grpc_port, http_port, admin = free_ports(3)
    # The chart's fixed container ports, on free loopback ports instead (tests share the machine).
    local = {
        "SENTRYROUTE_OTLP_GRPC": f"127.0.0.1:{grpc_port}",
        "SENTRYROUTE_OTLP_HTTP": f"127.0.0.1:{http_port}",
        "SENTRYROUTE_ADMIN": f"127.0.0.1:{admin}",
    }
    rendered_env = container_env(workload(manifests, "forwarder"), pod_name="unused")
    if "SENTRYROUTE_QUEUE_DIR" in rendered_env:  # the replica's volume: a directory of this test instead
        local["SENTRYROUTE_QUEUE_DIR"] = str(tmp_path / "queue")
    if source == "file":
        rendered = container_env(workload(manifests, "forwarder"), pod_name="unused")["SENTRYROUTE_ROUTES"]
        local["SENTRYROUTE_ROUTES"] = str(mount.directory / Path(rendered).name)  # /etc/sentryroute/routes.json
    process, log = start(manifests, "forwarder", kube=kube, tmp_path=tmp_path, env=local)
    try:
        eventually(lambda: admin_page(admin, "/readyz"), what="/readyz", process=process, log=log)
        if source == "file":
            mount.write(second)
        else:
            kube.apply(configmap | {"data": {"routes.json": second}}, namespace=NAMESPACE)
        loaded = f'sentryroute_routes_revision_info{{revision="{second_revision}"}} 1.0'
        eventually(lambda: loaded in admin_page(admin, "/metrics"), what="the updated table", process=process, log=log)
    finally:
        stop(process)
    accesses = assert_authorised(kube, manifests, "forwarder")
    if source == "configmap":
        assert Access("watch", "", "configmaps", NAMESPACE, "sentryroute-routes") in accesses

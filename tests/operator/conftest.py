"""The operator running for real: kopf in a thread, against the emulated Kubernetes API and the Sentry emulator.

Durations are short (warmup 0.5 s, re-verify 1 s) so every scenario finishes in seconds; every check polls
with a generous timeout, because other suites may be loading the machine.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from sentryroute_operator.runtime import OperatorApp
from sentryroute_operator.settings import ObjectRef, OperatorSettings

from sentryroute.emulator import EmulatorConfig, SentryEmulator
from sentryroute.kube import KubeEmulator
from sentryroute.routes import RoutesTable, parse_routes_table

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
OPERATOR_NS = "sentryroute-system"
ORG, TEAM = "acme", "backend"
#: Planted as the Sentry token; must never appear in logs, status, Events or ConfigMaps.
CANARY = "sntryu_canary0123456789abcdef0123456789abcdef0123456789abcdef01"
SCOPES = ("org:read", "project:read", "project:write", "project:admin")


def eventually(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> T:
    """Poll `check` until it returns something truthy without raising; fail with the last problem."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except (AssertionError, ApiException, LookupError, TypeError, AttributeError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check.__name__}: {last!r}")
        time.sleep(interval)


class LogCapture(logging.Handler):
    """Every log record of the process, formatted, so a test can grep them all for the canary token."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a broken record must not break the capture
            text = repr(record.msg)
        self.lines.append(text)


@dataclass
class Cluster:
    kube: KubeEmulator
    api: kubernetes.client.ApiClient
    core: kubernetes.client.CoreV1Api = field(init=False)
    custom: kubernetes.client.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)

    # --- pods and owners ---
    def pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        containers: list[list[dict[str, Any]]] | None = None,
        init_containers: list[list[dict[str, Any]]] | None = None,
        owner: tuple[str, str, str] | None = None,  # (apiVersion, kind, name)
    ) -> None:
        metadata: dict[str, Any] = {"name": name, "labels": labels or {}, "annotations": annotations or {}}
        if owner is not None:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": owner[0],
                    "kind": owner[1],
                    "name": owner[2],
                    "uid": f"uid-{owner[2]}",
                    "controller": True,
                }
            ]
        spec: dict[str, Any] = {
            "containers": [{"name": f"c{i}", "image": "app", "env": env} for i, env in enumerate(containers or [[]])]
        }
        if init_containers:
            spec["initContainers"] = [{"name": f"i{i}", "image": "x", "env": e} for i, e in enumerate(init_containers)]
        body: Any = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
        self.core.create_namespaced_pod(namespace, body)

    def owned(self, api_version: str, kind: str, namespace: str, name: str, *, owner: tuple[str, str]) -> None:
        """A ReplicaSet or Job controlled by a Deployment or CronJob (the emulator runs no controllers)."""
        body = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "x/v1",
                        "kind": owner[0],
                        "name": owner[1],
                        "uid": f"uid-{owner[1]}",
                        "controller": True,
                    }
                ],
            },
            "spec": {},
        }
        self.kube.apply(body, namespace=namespace)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.core.delete_namespaced_pod(name, namespace)

    def patch_pod_labels(self, namespace: str, name: str, labels: dict[str, str | None]) -> None:
        self.core.patch_namespaced_pod(name, namespace, {"metadata": {"labels": labels}})

    # --- namespaces ---
    def namespace(self, name: str, labels: dict[str, str]) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": labels}})

    def label_namespace(self, name: str, labels: dict[str, str | None]) -> None:
        """Merge-patch the labels (None removes one)."""
        self.core.patch_namespace(name, {"metadata": {"labels": labels}})

    def delete_namespace(self, name: str) -> None:
        self.core.delete_namespace(name)

    # --- SentryRoutes ---
    def route(
        self, namespace: str, name: str, spec: dict[str, Any], *, annotations: dict[str, str] | None = None
    ) -> None:
        body = {
            "apiVersion": "sentryroute.dev/v1alpha1",
            "kind": "SentryRoute",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object("sentryroute.dev", "v1alpha1", namespace, "sentryroutes", body)

    def cluster_route(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "sentryroute.dev/v1alpha1",
            "kind": "ClusterSentryRoute",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_cluster_custom_object("sentryroute.dev", "v1alpha1", "clustersentryroutes", body)

    def cluster_route_ready(self, name: str) -> dict[str, Any]:
        obj = self.kube.get("sentryroute.dev/v1alpha1/clustersentryroutes", None, name) or {}
        conds = (obj.get("status") or {}).get("conditions") or ()
        return dict(next((c for c in conds if c.get("type") == "Ready"), {}))

    def patch_route(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            "sentryroute.dev", "v1alpha1", namespace, "sentryroutes", name, patch
        )

    def delete_route(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object("sentryroute.dev", "v1alpha1", namespace, "sentryroutes", name)

    def route_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get("sentryroute.dev/v1alpha1/sentryroutes", namespace, name)

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self.route_object(namespace, name)
        return dict((obj or {}).get("status") or {})

    def entries(self, namespace: str, name: str) -> dict[str, dict[str, Any]]:
        return {e["value"]: e for e in self.status(namespace, name).get("projects") or ()}

    def ready(self, namespace: str, name: str) -> dict[str, Any]:
        """The Ready condition ({} before the operator wrote one)."""
        conds = self.status(namespace, name).get("conditions") or ()
        return dict(next((c for c in conds if c.get("type") == "Ready"), {}))

    # --- ConfigMaps, Secrets, Events ---
    def table(self) -> RoutesTable | None:
        cm = self.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-routes")
        if cm is None or "routes.json" not in (cm.get("data") or {}):
            return None
        return parse_routes_table(cm["data"]["routes.json"])

    def current_table(self) -> RoutesTable:
        table = self.table()
        assert table is not None, "no routes table written yet"
        return table

    def secret(self, name: str, token: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": OPERATOR_NS},
            "data": {"token": base64.b64encode(token.encode()).decode()},
        }
        self.kube.apply(body, namespace=OPERATOR_NS)

    def events(self) -> list[dict[str, Any]]:
        return self.kube.objects("v1/events")


@dataclass
class Sentry:
    emu: SentryEmulator
    token: str

    def project(self, slug: str) -> Any:
        return self.emu.state.project(ORG, slug)

    def endpoint_of(self, slug: str) -> dict[str, str]:
        """What the operator must render for `slug`: the oldest active key's OTLP URLs (with the emulator's form)."""
        project = self.project(slug)
        if project is None:
            raise LookupError(f"project {slug} does not exist (yet)")
        key = sorted((k for k in self.emu.state.project_keys(project.id) if k.is_active), key=lambda k: k.seq)[0]
        base = f"{self.emu.url}/api/{project.id}/integration/otlp/v1"
        return {"id": project.id, "tracesUrl": f"{base}/traces", "logsUrl": f"{base}/logs", "publicKey": key.public}


class RunningOperator:
    """One operator (its own kopf registry and engine) in a thread with its own event loop."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.app = OperatorApp(settings)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._main, name=f"operator-{settings.priority}", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self.app.run(stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as exc:
            self._errors.append(exc)

    def start(self) -> RunningOperator:
        self._thread.start()
        assert self._ready.wait(30), "the operator did not start"
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the operator did not stop"
        assert not self._errors, self._errors

    @property
    def writes(self) -> int:
        return self.app.engine.routes_configmap.writes


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with KubeEmulator(kubeconfig_path=os.environ["KUBECONFIG"]).running_in_thread() as kube:
        kube.apply_file(REPO / "deploy/crds/sentryroute.yaml")
        kube.apply_file(REPO / "deploy/crds/clustersentryroute.yaml")
        kube.apply_file(REPO / "deploy/crds/kopf-peering.yaml")
        with kube.api_client() as api:
            c = Cluster(kube=kube, api=api)
            c.secret("sentry-token", CANARY)
            yield c


@pytest.fixture
def sentry() -> Iterator[Sentry]:
    emu = SentryEmulator(EmulatorConfig(page_size=2))
    with emu.running_in_thread():
        emu.state.add_org(ORG)
        emu.state.add_team(ORG, TEAM)
        emu.state.add_token(scopes=SCOPES, value=CANARY)
        yield Sentry(emu=emu, token=CANARY)


@pytest.fixture
def settings(tmp_path: Path, sentry: Sentry, cluster: Cluster) -> OperatorSettings:
    connections = tmp_path / "connections.yaml"
    connections.write_text(
        yaml.safe_dump(
            {"connections": [{"name": "default", "url": sentry.emu.url, "orgSlug": ORG, "tokenSecret": "sentry-token"}]}
        )
    )
    return OperatorSettings(
        namespace=OPERATOR_NS,
        connections_file=str(connections),
        routes_configmap=ObjectRef(OPERATOR_NS, "sentryroute-routes"),
        report_configmap=ObjectRef(OPERATOR_NS, "sentryroute-requests"),
        new_project_warmup=0.5,
        reverify_interval=1.0,
        kubeconfig=os.environ["KUBECONFIG"],
        env={},
    )


@pytest.fixture
def start_operator(settings: OperatorSettings) -> Iterator[Callable[..., RunningOperator]]:
    running: list[RunningOperator] = []

    def start(**overrides: Any) -> RunningOperator:
        op = RunningOperator(replace(settings, **overrides)).start()
        running.append(op)
        return op

    yield start
    for op in running:
        if op._thread.is_alive():
            op.stop()


class TableRecorder:
    """Every version of routes.json, seen through a real watch (what a forwarder watching the ConfigMap sees)."""

    def __init__(self, cluster: Cluster) -> None:
        self.tables: list[RoutesTable] = []
        self._version: str | None = None
        self._client = cluster.kube.api_client()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="table-recorder", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        core = kubernetes.client.CoreV1Api(self._client)
        while not self._stop.is_set():
            try:
                self._watch_once(core)
            except ApiException as exc:  # 410 Gone: the version is too old, list again
                if exc.status != 410:
                    raise
                self._version = None

    def _watch_once(self, core: kubernetes.client.CoreV1Api) -> None:
        stream = kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map,
            OPERATOR_NS,
            field_selector="metadata.name=sentryroute-routes",
            timeout_seconds=1,
            **({"resource_version": self._version} if self._version else {}),
        )
        for event in stream:
            self._version = event["object"].metadata.resource_version  # resume here: no version falls in a gap
            data = event["object"].data or {}
            if "routes.json" in data:
                table = parse_routes_table(data["routes.json"])
                if not self.tables or self.tables[-1].revision != table.revision:
                    self.tables.append(table)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()


@pytest.fixture
def recorder(cluster: Cluster) -> Iterator[TableRecorder]:
    rec = TableRecorder(cluster)
    yield rec
    rec.stop()


def routed(table: RoutesTable | None) -> dict[tuple[str, str | None], str]:
    """value, namespace → project of every route in `table` (empty for no table)."""
    return {(r.value, r.namespace): r.project for r in (table.routes if table else ())}

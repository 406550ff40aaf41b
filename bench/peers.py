"""The cluster the `--namespace-from peer` variant runs in: an emulated Kubernetes API holding the load
generator's Pod and a few thousand others, and the checks that the forwarder really attributed the load to it.

The load generator connects from 127.0.0.1, so one Pod in namespace `bench` has that address; the other pods
(10.x addresses, 50 namespaces, each as big as a real Deployment's pod) make the listing and the index the
size of a busy cluster's. The request resources claim
`k8s.namespace.name=bench`, which is true: this is the honest common case, no resource is rewritten (the cost
of a lying client is measured by bench/peer_cost.py). The routes are namespaced to `bench`, so every request
goes through the strict (peer) matching.

The emulator shares the harness's event loop (CPU 1, beside the sink); after each forwarder has listed the
pods it only holds an idle watch open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from sentryroute.kube import KubeEmulator
from tests.forwarder.durability import scrape, total

__all__ = ["BENCH_NAMESPACE", "LOAD_ADDRESS", "PodCluster", "pod_cluster"]

BENCH_NAMESPACE = "bench"
LOAD_ADDRESS = "127.0.0.1"  # wrk's and h2load's source address
_NAMESPACES = 50


def _pod(name: str, namespace: str, ip: str) -> dict[str, Any]:
    """A Deployment's running pod as a real API server lists it (~5.6 KB of JSON): managed fields, owner, probes,
    env, the projected service-account volume, conditions and container statuses. The forwarder reads a few
    fields of it, but it lists whole objects, so their size is what its listing costs."""
    app = name.rsplit("-", 1)[0]
    image = f"registry.example.com/{namespace}/{app}:1.24.3"
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app, "pod-template-hash": "7d9f8c6b5d"}
    owner = "0b6f8a52-2f7e-4c1e-9a55-3f0d6c1e2b7a"
    managed = {"apiVersion": "v1", "fieldsType": "FieldsV1", "time": "2026-12-01T10:00:00Z", "operation": "Update"}
    http_probe = {"port": "http", "scheme": "HTTP"}
    probe = {"timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    container = {
        "name": "app",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        ],
        "env": [
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://sentryroute-forwarder.sentryroute:4318"},
            {"name": "OTEL_SERVICE_NAME", "value": app},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "LOG_LEVEL", "value": "info"},
        ],
        "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", **http_probe}, "initialDelaySeconds": 10, **probe},
        "readinessProbe": {"httpGet": {"path": "/readyz", **http_probe}, "periodSeconds": 5, **probe},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app"},
            {
                "name": "kube-api-access-x7k2p",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            },
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    spec_fields: dict[str, Any] = {
        f"f:{key}": {} for key in ("dnsPolicy", "enableServiceLinks", "restartPolicy", "volumes")
    }
    container_fields: dict[str, Any] = {f"f:{key}": {} for key in container}
    status_fields: dict[str, Any] = {
        f"f:{key}": {} for key in ("conditions", "containerStatuses", "hostIP", "phase", "startTime")
    }
    api_access = [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {
            "downwardAPI": {
                "items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]
            }
        },
    ]
    conditions = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": f"{app}-7d9f8c6b5d-",
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-12-01T09:59:58Z",
                "prometheus.io/scrape": "true",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-7d9f8c6b5d",
                    "uid": owner,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    **managed,
                    "manager": "kube-controller-manager",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {f"f:{key}": {} for key in labels}, "f:ownerReferences": {}},
                        "f:spec": {"f:containers": {'k:{"name":"app"}': container_fields}, **spec_fields},
                    },
                },
                {
                    **managed,
                    "manager": "kubelet",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {**status_fields, "f:podIPs": {f'k:{{"ip":"{ip}"}}': {"f:ip": {}}}}},
                },
            ],
        },
        "spec": {
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
                {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": api_access}},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app,
            "serviceAccount": app,
            "nodeName": f"node-{len(name) % 40}",
            "securityContext": {"fsGroup": 2000},
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {
                    "key": f"node.kubernetes.io/{key}",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
                for key in ("not-ready", "unreachable")
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": "192.168.10.21",
            "hostIPs": [{"ip": "192.168.10.21"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": "2026-12-01T10:00:01Z",
            "qosClass": "Burstable",
            "conditions": [
                {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": "2026-12-01T10:00:09Z"}
                for kind in conditions
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": image,
                    "imageID": f"{image}@sha256:{'3f1c9b5e8d7a6c4b' * 4}",
                    "containerID": f"containerd://{'9c1d2e3f4a5b6c7d' * 4}",
                    "lastState": {},
                    "state": {"running": {"startedAt": "2026-12-01T10:00:05Z"}},
                }
            ],
        },
    }


def _other_address(n: int) -> str:
    return f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}"


class PodCluster:
    """A running emulated API with `1 + others` pods; `env` points a forwarder at it."""

    def __init__(self, kube: KubeEmulator, pods: int) -> None:
        self.kube = kube
        self.pods = pods

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kube.kubeconfig_path)}

    async def wait_seen(self, admin_port: int, *, within: float = 60) -> None:
        """Until the forwarder has listed every pod and /readyz answers ready (the load generator's pod is
        then in its index); fail loudly after `within` seconds."""
        url = f"http://127.0.0.1:{admin_port}"
        indexed: float | None = None
        try:
            async with asyncio.timeout(within), aiohttp.ClientSession() as http:
                while True:
                    indexed = total(await scrape(admin_port), "sentryroute_peer_index_pods")
                    if indexed == self.pods:
                        async with http.get(f"{url}/readyz") as ready:
                            if ready.status == 200:
                                return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise RuntimeError(
                f"the forwarder has {indexed} of {self.pods} pods in its peer index {within:g} s after it started"
            ) from None

    async def check_attributed(self, admin_port: int) -> None:
        """Every request was attributed to the load generator's pod: no lookup gave anything else."""
        samples = await scrape(admin_port)
        lookups = {
            dict(labels).get("result", ""): value
            for (name, labels), value in samples.items()
            if name == "sentryroute_peer_lookups_total"
        }
        others = {label: v for label, v in lookups.items() if label != "pod" and v}
        if not lookups.get("pod") or others:
            raise RuntimeError(f"peer lookups were not all of the load generator's pod: {lookups}")


@contextlib.asynccontextmanager
async def pod_cluster(others: int, workdir: Path) -> AsyncIterator[PodCluster]:
    """The emulated API with the load generator's pod in `bench` and `others` pods elsewhere."""
    async with KubeEmulator(kubeconfig_path=workdir / "kubeconfig") as kube:
        store = kube.emulator.store
        store.apply_document(_pod("load-generator", BENCH_NAMESPACE, LOAD_ADDRESS), namespace=BENCH_NAMESPACE)
        for n in range(others):
            namespace = f"team-{n % _NAMESPACES}"
            store.apply_document(_pod(f"app-{n}", namespace, _other_address(n)), namespace=namespace)
        # The stored pods are ~600k objects living in the harness for the whole run, beside the sink and the
        # load generator on CPU 1. Serving a forwarder's pod listing (once per peer round, just before its
        # load starts) allocates enough to trigger a full collection inside that round's window, which scanned
        # them all: a 300 ms stall of the sink and of CPU 1, measured with gc.callbacks, that fell on the peer
        # rounds only (their throughput looked ~10 % lower). Frozen, such a collection takes ~2 ms.
        gc.collect()
        gc.freeze()
        try:
            yield PodCluster(kube, 1 + others)
        finally:
            gc.unfreeze()

"""The cluster the `--namespace-from peer` variant runs in: an emulated Kubernetes API holding the load
generator's Pod and a few thousand others, and the checks that the forwarder really attributed the load to it.

The load generator connects from 127.0.0.1, so one Pod in namespace `bench` has that address; the other pods
(10.x addresses, 50 namespaces) make the index the size of a busy cluster. The request resources claim
`k8s.namespace.name=bench`, which is true: this is the honest common case, no resource is rewritten (the cost
of a lying client is measured by bench/peer_cost.py). The routes are namespaced to `bench`, so every request
goes through the strict (peer) matching.

The emulator shares the harness's event loop (CPU 1, beside the sink); after each forwarder has listed the
pods it only holds an idle watch open.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name.rsplit("-", 1)[0]}},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
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
        yield PodCluster(kube, 1 + others)

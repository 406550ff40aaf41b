"""The operator's own Kubernetes writes (ConfigMaps, SentryRoute status), off the event loop.

kopf does the watching; this small wrapper around the official client does the few writes kopf does not:
the blocking client runs in worker threads so one slow API call never stalls the reconcile loop.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from .settings import ObjectRef, OperatorSettings
from .watch.routes import GROUP, PLURAL, VERSION

MANAGED_LABELS = {"app.kubernetes.io/managed-by": "sentryroute-operator", "app.kubernetes.io/part-of": "sentryroute"}


def new_api_client(settings: OperatorSettings) -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig (standard resolution)."""
    if settings.kubeconfig is None and settings.env.get("KUBERNETES_SERVICE_HOST"):
        config = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=config)
        return kubernetes.client.ApiClient(configuration=config)
    return kubernetes.config.new_client_from_config(config_file=settings.kubeconfig)


class KubeIO:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)

    def core_v1(self) -> kubernetes.client.CoreV1Api:
        return self.core

    async def read_configmap(self, ref: ObjectRef) -> dict[str, str] | None:
        """The ConfigMap's data, or None when it does not exist."""
        try:
            cm = await asyncio.to_thread(self.core.read_namespaced_config_map, ref.name, ref.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(cm.data or {})

    async def create_configmap(self, ref: ObjectRef, data: dict[str, str]) -> bool:
        """Create it; False when it already exists."""
        body: Any = {"metadata": {"name": ref.name, "namespace": ref.namespace, "labels": MANAGED_LABELS}, "data": data}
        try:
            await asyncio.to_thread(self.core.create_namespaced_config_map, ref.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_configmap_data(self, ref: ObjectRef, data: dict[str, str | None]) -> None:
        """JSON-merge-patch `data` (a None value removes that key)."""
        await asyncio.to_thread(self.core.patch_namespaced_config_map, ref.name, ref.namespace, {"data": data})

    async def patch_route_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
        )

    async def post_event(self, ref: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        """A Kubernetes Event on `ref` (a SentryRoute), as `kubectl describe` shows them."""
        meta = ref["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": ref["apiVersion"],
                "kind": ref["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": "sentryroute-operator"},
            "reportingComponent": "sentryroute-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await asyncio.to_thread(self.core.create_namespaced_event, meta["namespace"], body)

    def close(self) -> None:
        self.api_client.close()

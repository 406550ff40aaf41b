"""The operator's own Kubernetes calls outside kopf: ConfigMaps, SentryRoute status, token Secrets.

kopf does the watching of what it indexes; these few calls go through the shared async client
(`sentryroute.kubeapi`, the same one the forwarder uses), so they never block the event loop. Every failure
arrives as `KubeApiError` (with the HTTP status when there was one): callers catch exactly that and let
programming errors surface with their tracebacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sentryroute.kubeapi import KubeApiError, KubeClient, configmap_path, object_path, secret_path

from .derive.routes import GROUP, PLURAL, VERSION
from .settings import ObjectRef, OperatorSettings

__all__ = ["MANAGED_LABELS", "KubeApiError", "KubeIO", "new_kube_client"]

MANAGED_LABELS = {"app.kubernetes.io/managed-by": "sentryroute-operator", "app.kubernetes.io/part-of": "sentryroute"}


def new_kube_client(settings: OperatorSettings) -> KubeClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig (standard resolution)."""
    return KubeClient(kubeconfig=settings.kubeconfig)


class KubeIO:
    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def read_configmap(self, ref: ObjectRef) -> dict[str, str] | None:
        """The ConfigMap's data, or None when it does not exist."""
        found = await self.read_configmap_and_annotations(ref)
        return None if found is None else found[0]

    async def read_configmap_and_annotations(self, ref: ObjectRef) -> tuple[dict[str, str], dict[str, str]] | None:
        """The ConfigMap's data and its annotations (string values only), read with one GET; None when it does
        not exist."""
        cm = await self.client.get_or_none(configmap_path(ref.namespace, ref.name))
        if cm is None:
            return None
        annotations = (cm.get("metadata") or {}).get("annotations") or {}
        strings = {name: value for name, value in annotations.items() if isinstance(value, str)}
        return dict(cm.get("data") or {}), strings

    async def patch_configmap_annotation(self, ref: ObjectRef, name: str, value: str) -> None:
        await self.client.merge_patch(
            configmap_path(ref.namespace, ref.name), {"metadata": {"annotations": {name: value}}}
        )

    async def create_configmap(self, ref: ObjectRef, data: dict[str, str]) -> bool:
        """Create it; False when it already exists."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ref.name, "namespace": ref.namespace, "labels": MANAGED_LABELS},
            "data": data,
        }
        try:
            await self.client.create(configmap_path(ref.namespace), body)
        except KubeApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_configmap_data(self, ref: ObjectRef, data: Mapping[str, str | None]) -> None:
        """JSON-merge-patch `data` (a None value removes that key)."""
        await self.client.merge_patch(configmap_path(ref.namespace, ref.name), {"data": dict(data)})

    async def patch_route_status(
        self, namespace: str, name: str, status: dict[str, Any], *, plural: str = PLURAL
    ) -> None:
        """`plural` clustersentryroutes (namespace "") for a ClusterSentryRoute."""
        path = object_path(GROUP, VERSION, plural, namespace or None, name, "status")
        await self.client.merge_patch(path, {"status": status})

    async def read_secret_data(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A Secret's `data` (base64 values), or None when the Secret does not exist."""
        secret = await self.client.get_or_none(secret_path(namespace, name))
        return None if secret is None else dict(secret.get("data") or {})

    async def close(self) -> None:
        await self.client.close()

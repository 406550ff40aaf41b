"""The operator's own Kubernetes calls outside kopf (ConfigMaps, SentryRoute status), off the event loop.

kopf does the watching; this small wrapper around the official client does the few writes kopf does not:
the blocking client runs in worker threads so one slow API call never stalls the reconcile loop. Every
failure the API server or the network can cause arrives as one `KubeApiError` (with the HTTP status when
there was one), so callers catch exactly that and let programming errors surface with their tracebacks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from .derive.routes import GROUP, PLURAL, VERSION
from .settings import ObjectRef, OperatorSettings

_T = TypeVar("_T")

MANAGED_LABELS = {"app.kubernetes.io/managed-by": "sentryroute-operator", "app.kubernetes.io/part-of": "sentryroute"}


def new_api_client(settings: OperatorSettings) -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig (standard resolution)."""
    if settings.kubeconfig is None and settings.env.get("KUBERNETES_SERVICE_HOST"):
        config = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=config)
        return kubernetes.client.ApiClient(configuration=config)
    return kubernetes.config.new_client_from_config(config_file=settings.kubeconfig)


class KubeApiError(Exception):
    """A Kubernetes API call failed: an error status (`status`), or no answer at all (`status` None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


async def _call(fn: Callable[..., _T], *args: Any) -> _T:
    """Run one blocking client call in a worker thread, its failures as `KubeApiError`."""
    try:
        return await asyncio.to_thread(functools.partial(fn, *args))
    except ApiException as exc:
        raise KubeApiError(f"{exc.status} {exc.reason}", status=exc.status) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeApiError(f"{type(exc).__name__}: {exc}") from None


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
            cm = await _call(self.core.read_namespaced_config_map, ref.name, ref.namespace)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(cm.data or {})

    async def create_configmap(self, ref: ObjectRef, data: dict[str, str]) -> bool:
        """Create it; False when it already exists."""
        body: Any = {"metadata": {"name": ref.name, "namespace": ref.namespace, "labels": MANAGED_LABELS}, "data": data}
        try:
            await _call(self.core.create_namespaced_config_map, ref.namespace, body)
        except KubeApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_configmap_data(self, ref: ObjectRef, data: dict[str, str | None]) -> None:
        """JSON-merge-patch `data` (a None value removes that key)."""
        await _call(self.core.patch_namespaced_config_map, ref.name, ref.namespace, {"data": data})

    async def patch_route_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await _call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
        )

    def close(self) -> None:
        self.api_client.close()

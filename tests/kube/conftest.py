"""Fixtures: a fresh emulated API server per test, reachable through the process-wide $KUBECONFIG.

kopf and `kubernetes.config.load_kube_config()` read the path tests/conftest.py put in $KUBECONFIG, so the
emulator writes its kubeconfig exactly there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import kubernetes
import pytest

from sentryroute.kube import KubeEmulator
from tests.kube.helpers import WIDGET_CRD, CoreApi, CustomApi


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator(kubeconfig_path=os.environ["KUBECONFIG"]).running_in_thread() as emulator:
        yield emulator


@pytest.fixture
def api(kube: KubeEmulator) -> Iterator[kubernetes.client.ApiClient]:
    with kube.api_client() as client:
        yield client


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> CoreApi:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def custom(api: kubernetes.client.ApiClient) -> CustomApi:
    return kubernetes.client.CustomObjectsApi(api)


@pytest.fixture
def widgets(kube: KubeEmulator) -> None:
    """The example.dev/v1 Widget kind (namespaced, status subresource), registered by creating its CRD."""
    kube.apply(WIDGET_CRD)

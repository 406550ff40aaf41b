"""The derivation chains of SPEC §2: which `service.name` values a Pod's containers report.

Per non-init container, the first name found wins. `explicit` uses only names a person stated for the
pod; `inferred` continues with the names the OpenTelemetry Operator or a k8sattributes processor would
fill in. A placeholder (`unknown_service*`, what SDKs report when no name is set) never counts: the chain
moves on to the next source as if it were absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from .podfacts import ContainerFacts, PodFacts

DeriveMode = Literal["explicit", "inferred"]

SERVICE_NAME_LABEL = "service.name"
SERVICE_NAME_ANNOTATION = "resource.opentelemetry.io/service.name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
NAME_LABEL = "app.kubernetes.io/name"
PLACEHOLDER_PREFIX = "unknown_service"
#: Longer names are ignored: they cannot be a real service name, and the status entry caps values at this length.
MAX_SERVICE_NAME_LENGTH = 1024


def is_placeholder(value: str) -> bool:
    """`unknown_service`, `unknown_service:java`, …: what an SDK reports when nobody named the service."""
    return value.startswith(PLACEHOLDER_PREFIX)


def _chain(pod: PodFacts, container: ContainerFacts, *, mode: DeriveMode, workload: str | None) -> Iterator[str | None]:
    yield container.service_name_env
    yield container.resource_attributes_name
    yield pod.labels.get(SERVICE_NAME_LABEL)
    yield pod.annotations.get(SERVICE_NAME_ANNOTATION)
    if mode == "inferred":
        yield pod.labels.get(INSTANCE_LABEL)
        yield pod.labels.get(NAME_LABEL)
        yield workload
        yield pod.name


def derive_service_names(pod: PodFacts, *, mode: DeriveMode, workload: str | None = None) -> list[str]:
    """The distinct names `pod` reports, in container order. `workload` is the owning workload's name."""
    names: list[str] = []
    for container in pod.containers:
        name = next(
            (
                n
                for n in _chain(pod, container, mode=mode, workload=workload)
                if n and not is_placeholder(n) and len(n) <= MAX_SERVICE_NAME_LENGTH
            ),
            None,
        )
        if name is not None and name not in names:
            names.append(name)
    return names

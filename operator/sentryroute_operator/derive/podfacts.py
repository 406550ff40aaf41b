"""The few facts about a Pod that name derivation needs, extracted once when the Pod is indexed.

Keeping only these (not whole Pod bodies) bounds the operator's memory on large clusters; owners are
resolved later, at reconcile time, because a Pod's ReplicaSet may be listed after the Pod itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .resource_attributes import service_name_from_resource_attributes

SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"
RESOURCE_ATTRIBUTES_ENV = "OTEL_RESOURCE_ATTRIBUTES"


@dataclass(frozen=True)
class ContainerFacts:
    """The names one (non-init) container states in its environment; `valueFrom` entries are skipped."""

    service_name_env: str | None = None
    resource_attributes_name: str | None = None


@dataclass(frozen=True)
class OwnerRef:
    kind: str
    name: str


@dataclass(frozen=True)
class PodFacts:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[ContainerFacts, ...] = ()
    owner: OwnerRef | None = None


def _literal_env(container: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env") or ():
        name, value = item.get("name"), item.get("value")
        # `valueFrom` (Secret, ConfigMap, field refs) is unknown to us: skip it rather than guess.
        if isinstance(name, str) and isinstance(value, str) and "valueFrom" not in item:
            env[name] = value
    return env


def container_facts(container: Mapping[str, Any]) -> ContainerFacts:
    env = _literal_env(container)
    raw_attributes = env.get(RESOURCE_ATTRIBUTES_ENV)
    return ContainerFacts(
        service_name_env=env.get(SERVICE_NAME_ENV),
        resource_attributes_name=service_name_from_resource_attributes(raw_attributes) if raw_attributes else None,
    )


def controller_owner(metadata: Mapping[str, Any]) -> OwnerRef | None:
    """The controlling ownerReference (the one with `controller: true`), else None."""
    for ref in metadata.get("ownerReferences") or ():
        if ref.get("controller") and isinstance(ref.get("kind"), str) and isinstance(ref.get("name"), str):
            return OwnerRef(kind=ref["kind"], name=ref["name"])
    return None


def pod_facts(body: Mapping[str, Any]) -> PodFacts:
    """Extract the derivation facts from a Pod body (init containers are ignored on purpose)."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return PodFacts(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        containers=tuple(container_facts(c) for c in spec.get("containers") or ()),
        owner=controller_owner(metadata),
    )

"""The owning workload's name (SPEC §2 `inferred`): Deployment through its ReplicaSet, CronJob through its Job."""

from __future__ import annotations

from collections.abc import Callable

from .podfacts import OwnerRef

#: ReplicaSet → Deployment and Job → CronJob: the one extra hop the chain takes.
_PARENT_KIND = {"ReplicaSet": "Deployment", "Job": "CronJob"}
_DIRECT_KINDS = {"StatefulSet", "DaemonSet"}

ParentLookup = Callable[[OwnerRef], OwnerRef | None]


def workload_name(owner: OwnerRef | None, *, parent_of: ParentLookup) -> str | None:
    """The workload a Pod belongs to, or None for a bare Pod or an owner kind that is not a workload.

    `parent_of` returns the controller of the Pod's owner (from the ReplicaSet and Job indexes); a bare
    ReplicaSet or Job is itself the workload.
    """
    if owner is None:
        return None
    if owner.kind in _DIRECT_KINDS:
        return owner.name
    parent_kind = _PARENT_KIND.get(owner.kind)
    if parent_kind is None:
        return None
    parent = parent_of(owner)
    if parent is not None and parent.kind == parent_kind:
        return parent.name
    return owner.name

"""Who sent a request, as far as routing goes: the namespace to route its resources by (SPEC §6.1).

`attribute` mode believes each resource's own `k8s.namespace.name`. In `peer` mode a receiver resolves the
connection's peer address to an `Origin`: a pod's namespace (the resources' claims are overruled), a
trusted relay (each resource's claim is believed), or nobody (no namespace at all).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ATTRIBUTE", "UNKNOWN", "Origin"]


@dataclass(frozen=True, slots=True)
class Origin:
    """`namespace`: the sender's namespace; `trust_attribute`: read each resource's own claim instead."""

    namespace: str | None
    trust_attribute: bool = False

    @classmethod
    def pod(cls, namespace: str) -> Origin:
        return cls(namespace)

    def resource_namespace(self, claimed: object) -> str | None:
        """The namespace a resource is routed by, given what it claims (`k8s.namespace.name`)."""
        if self.trust_attribute:
            return claimed if isinstance(claimed, str) else None
        return self.namespace

    def needs_rewrite(self, claimed: object) -> bool:
        """True when the resource's claim differs from the namespace it is routed by (it must be corrected)."""
        return not self.trust_attribute and claimed is not None and claimed != self.namespace


#: `--namespace-from attribute`, and trusted relays: every resource says its own namespace.
ATTRIBUTE = Origin(None, trust_attribute=True)
#: `peer` mode, a peer that is neither a known pod nor a trusted relay.
UNKNOWN = Origin(None)

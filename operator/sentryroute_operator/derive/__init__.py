"""Which `service.name` values a Pod reports (SPEC §2): pure functions over plain pod data."""

from .owners import workload_name
from .podfacts import ContainerFacts, OwnerRef, PodFacts, controller_owner, pod_facts
from .resource_attributes import service_name_from_resource_attributes
from .selectors import selector_matches
from .service_names import DeriveMode, derive_service_names, is_placeholder

__all__ = [
    "ContainerFacts",
    "DeriveMode",
    "OwnerRef",
    "PodFacts",
    "controller_owner",
    "derive_service_names",
    "is_placeholder",
    "pod_facts",
    "selector_matches",
    "service_name_from_resource_attributes",
    "workload_name",
]

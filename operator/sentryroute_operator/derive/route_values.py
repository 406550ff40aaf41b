"""Which values one SentryRoute covers right now: its mapping, and the names derived from its namespace's Pods."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sentryroute.routes import slug

from .owners import ParentLookup, workload_name
from .podfacts import PodFacts
from .selectors import compile_selector
from .service_names import DeriveMode, derive_service_names


def pod_service_names(
    pods: Iterable[PodFacts], *, mode: DeriveMode, selector: Mapping[str, Any] | None, parent_of: ParentLookup
) -> list[str]:
    """Distinct names the selected Pods report, sorted (the table order must not depend on watch order)."""
    names: set[str] = set()
    matcher = compile_selector(selector)
    for pod in pods:
        if matcher.matches(pod.labels):
            workload = workload_name(pod.owner, parent_of=parent_of)
            names.update(derive_service_names(pod, mode=mode, workload=workload))
    return sorted(names)


def project_slug(template: str, *, service: str, namespace: str) -> str:
    """`projectTemplate` with `{service}`/`{namespace}` filled in, through slug().

    Plain replacement, not str.format: a template is user input and must not reach format's attribute lookup.
    """
    return slug(template.replace("{service}", service).replace("{namespace}", namespace))

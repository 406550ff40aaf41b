"""Writing each SentryRoute's status: only when it changed, so a status write never triggers another.

A failed write is logged and retried on a later cycle; one route's status never stops the loop or the others.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..derive.plan import RoutePlan
from ..derive.routes import RouteKey
from ..kubeio import KubeApiError, KubeIO
from ..metrics import ROUTE_VALUES
from ..provision.provisioner import ProjectState
from .renderer import RouteStatus
from .status import same_status, status_body

log = logging.getLogger(__name__)


class StatusWriter:
    def __init__(self, kube: KubeIO) -> None:
        self.kube = kube
        self._written: dict[RouteKey, tuple[str, dict[str, Any]]] = {}  # route → (uid, last body written)

    async def write(
        self, plans: Sequence[RoutePlan], statuses: Mapping[RouteKey, RouteStatus], *, size_problem: str | None
    ) -> None:
        states = Counter(str(entry.state) for status in statuses.values() for entry in status.entries)
        for state in ProjectState:
            ROUTE_VALUES.labels(str(state)).set(states.get(str(state), 0))
        live = {plan.key for plan in plans}
        self._written = {key: written for key, written in self._written.items() if key in live}
        for plan in plans:
            status = statuses.get(plan.key)
            if status is not None:
                await self._write_one(plan, status, size_problem)

    async def _write_one(self, plan: RoutePlan, status: RouteStatus, size_problem: str | None) -> None:
        spec = plan.spec
        body = status_body(
            generation=spec.generation,
            entries=status.entries,
            condition=status.condition,
            previous_conditions=spec.status_conditions,
            table_size_problem=size_problem,
            truncated=status.truncated,
        )
        written = self._written.get(plan.key)
        last = written[1] if written is not None and written[0] == spec.uid else spec.current_status
        if same_status(last, body):
            return
        try:
            await self.kube.patch_route_status(spec.namespace, spec.name, body, plural=spec.plural)
        except KubeApiError as exc:  # the next cycle retries
            log.warning("Writing the status of SentryRoute %s/%s failed: %s", spec.namespace, spec.name, exc)
            return
        self._written[plan.key] = (spec.uid, body)

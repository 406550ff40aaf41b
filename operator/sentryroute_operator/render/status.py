"""A SentryRoute's status (SPEC §2): the Ready condition, one entry per value, and the patch that writes them.

Pure functions build the status from per-value entries; the reconcile writes it only when it changed, so a
status write (which the watch sees as an event) never triggers another write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..provision.provisioner import ProjectState

#: Failure reasons that name the whole route's problem, most urgent first.
_ROUTE_REASONS = ("Unauthorized", "Forbidden", "SlugReserved")
_MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class ProjectStatus:
    """One `status.projects[]` entry."""

    value: str
    slug: str
    id: str | None
    state: ProjectState
    created: bool
    reason: str | None = None
    message: str = ""
    last_seen: str | None = None  # RFC 3339, for an auto value no Pod reports any more

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "value": self.value,
            "slug": self.slug,
            "state": str(self.state),
            "created": self.created,
        }
        if self.id:
            entry["id"] = self.id
        if self.message:
            entry["message"] = self.message[:_MESSAGE_LIMIT]
        if self.last_seen:
            entry["lastSeen"] = self.last_seen
        return entry


@dataclass(frozen=True)
class Condition:
    status: str  # "True" | "False"
    reason: str
    message: str


def ready_condition(entries: Sequence[ProjectStatus], *, route_problem: tuple[str, str] | None = None) -> Condition:
    """Ready=True only when every value is Ready; otherwise the most telling reason, with counts."""
    if route_problem is not None:
        return Condition("False", route_problem[0], route_problem[1][:_MESSAGE_LIMIT])
    ready = sum(1 for e in entries if e.state == ProjectState.READY)
    counts = f"{ready}/{len(entries)} projects ready"
    failed = [e for e in entries if e.state == ProjectState.FAILED]
    for reason in _ROUTE_REASONS:
        hit = next((e for e in failed if e.reason == reason), None)
        if hit is not None:
            return Condition("False", reason, f"{counts}; {hit.value}: {hit.message}"[:_MESSAGE_LIMIT])
    if failed:
        first = failed[0]
        return Condition("False", "Failed", f"{counts}; {first.value}: {first.message}"[:_MESSAGE_LIMIT])
    conflicts = [e for e in entries if e.state == ProjectState.CONFLICT]
    if conflicts:
        return Condition("False", "Conflict", f"{counts}; {conflicts[0].message}"[:_MESSAGE_LIMIT])
    if ready < len(entries):
        return Condition("False", "Provisioning", counts)
    return Condition("True", "Provisioned", counts)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(
    *,
    generation: int,
    entries: Sequence[ProjectStatus],
    condition: Condition,
    previous_conditions: Sequence[Mapping[str, Any]] = (),
    table_size_problem: str | None = None,
    truncated: str | None = None,
) -> dict[str, Any]:
    """The `status` to write; `lastTransitionTime` moves only when a condition's status flips.

    `table_size_problem` adds `RoutesTableNearLimit=True` (SPEC §3: raised at 80 % of the ConfigMap limit) on
    every route, because every route's routes are at stake when the shared table nears the limit.
    `truncated` adds `TableTruncated=True` on a route some of whose entries the written table left out.
    """
    conditions = [_condition("Ready", condition, generation, previous_conditions)]
    if table_size_problem is not None:
        near = Condition("True", "TableNearSizeLimit", table_size_problem)
        conditions.append(_condition("RoutesTableNearLimit", near, generation, previous_conditions))
    if truncated is not None:
        cut = Condition("True", "TableTruncated", truncated)
        conditions.append(_condition("TableTruncated", cut, generation, previous_conditions))
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "projects": [e.as_json() for e in entries],
        "projectCount": len(entries),
    }


def _condition(
    kind: str, condition: Condition, generation: int, previous_conditions: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    previous = next((c for c in previous_conditions if c.get("type") == kind), None)
    if previous is not None and previous.get("status") == condition.status and previous.get("lastTransitionTime"):
        transition = str(previous["lastTransitionTime"])
    else:
        transition = _now()
    return {
        "type": kind,
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal ignoring `lastTransitionTime` (which `status_body` keeps stable anyway)."""

    def strip(s: Mapping[str, Any]) -> Any:
        conds = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in s.get("conditions") or ()]
        return {**{k: v for k, v in s.items() if k in ("observedGeneration", "projects", "projectCount")}, "c": conds}

    return bool(strip(a) == strip(b))

"""Kubernetes Events on a SentryRoute for what provisioning did: created, adopted, failed, deleted.

Posted through `kopf.event()`: kopf queues them and posts them in the background, so a slow or failing
Events API never delays provisioning. Outside a running kopf operator (unit tests) they are only logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, cast

import kopf

from ..metrics import PROJECTS_ADOPTED, PROJECTS_CREATED, PROVISIONING_FAILURES
from .provisioner import ProjectState, Provisioned
from .state import ValueState

log = logging.getLogger(__name__)


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    PROJECT_CREATED = "ProjectCreated"
    PROJECT_ADOPTED = "ProjectAdopted"
    PROVISIONING_FAILED = "ProvisioningFailed"
    PROJECT_GONE = "ProjectGone"
    PROJECT_DELETED = "ProjectDeleted"
    DELETE_FAILED = "DeleteFailed"


def post_event(obj: Mapping[str, Any], type_: EventType, reason: EventReason, message: str) -> None:
    try:
        body = kopf.Body(cast(kopf.RawBody, dict(obj)))
        kopf.event(body, type=str(type_), reason=str(reason), message=message[:1024])
    except LookupError:  # not inside a running kopf operator: nothing to post through
        log.info("Event %s on %s: %s", reason, obj.get("metadata", {}).get("name"), message)


def announce(obj: Mapping[str, Any], what: str, before: ValueState | None, result: Provisioned) -> None:
    """Events for a creation, a first adoption (or a new project id), and a new kind of failure."""
    before_id = before.project_id if before is not None else None
    before_reason = before.result.reason if before is not None and before.result is not None else None
    if result.created:
        PROJECTS_CREATED.inc()
        verb = f"Re-created {what} (project {before_id} is gone)" if before_id else f"Created {what}"
        post_event(obj, EventType.NORMAL, EventReason.PROJECT_CREATED, f"{verb}: {result.message}")
    elif result.state == ProjectState.READY and (before is None or before_id != result.project_id):
        PROJECTS_ADOPTED.inc()
        post_event(obj, EventType.NORMAL, EventReason.PROJECT_ADOPTED, f"Using existing {what}: {result.message}")
    elif result.state == ProjectState.FAILED and (before is None or before_reason != result.reason):
        PROVISIONING_FAILURES.labels(reason=str(result.reason or "Failed")).inc()
        post_event(obj, EventType.WARNING, EventReason.PROVISIONING_FAILED, f"{what}: {result.message}")

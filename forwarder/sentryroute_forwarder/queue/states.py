"""Whether each queue can flow: its export lane, Sentry's rate limits and projects Sentry refused.

One place answers "why is this queue not moving?", which decides both when a lane may send and which
reason its dropped data is counted under.
"""

from __future__ import annotations

import math

from sentryroute.routes import ProjectEndpoint
from sentryroute_forwarder.export.ratelimit import RateLimits
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.lane import Lane, ProjectHold
from sentryroute_forwarder.queue.store import QueueKey

__all__ = ["QueueStates"]


class QueueStates:
    def __init__(self) -> None:
        self.lanes: dict[QueueKey, Lane] = {}  # project queues only
        self.holds: dict[str, ProjectHold] = {}  # project → why Sentry refused it
        self.limits = RateLimits()

    def lane(self, key: QueueKey) -> Lane:
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(key)
        return lane

    def forget_project(self, project: str) -> bool:
        """Drop a project's lanes and own rate limits (it left the table and its queues are empty); False while
        one of its lanes still runs (it is re-routing what it had): try again later."""
        keys = [QueueKey.for_project(signal, project) for signal in Signal]
        if any((lane := self.lanes.get(key)) is not None and lane.running for key in keys):
            return False
        for key in keys:
            self.lanes.pop(key, None)
        self.limits.forget(project)
        self.holds.pop(project, None)
        return True

    def in_flight(self, key: QueueKey) -> bool:
        return self.sending(key) > 0

    def sending(self, key: QueueKey) -> int:
        """How many of the queue's oldest records are being sent right now."""
        lane = self.lanes.get(key)
        return lane.sending if lane is not None else 0

    def endpoint_changed(self, project: str, *, old: ProjectEndpoint, new: ProjectEndpoint) -> None:
        """A table changed a project's id, key or URLs: earlier failures say nothing about the new endpoint."""
        if old.id != new.id:
            self.limits.forget(project)
        for signal in Signal:
            lane = self.lanes.get(QueueKey.for_project(signal, project))
            if lane is not None:
                lane.failures, lane.backoff_until = 0, 0.0

    def stuck_reason(self, key: QueueKey, now: float) -> str | None:
        """Why a queue cannot flow — the reason its dropped data is counted under — or None while it can."""
        if key.hold is not None:
            return key.hold
        project = key.project or ""
        if project in self.holds:
            return "held"
        if self.limits.until(project, key.signal, now=now) > now:
            return "rate_limited"
        lane = self.lanes.get(key)
        if lane is not None and lane.failures > 0:
            return "upstream_failing"
        return None

    def blocked_until(self, key: QueueKey, now: float) -> float:
        """When a project queue may send next (inf while its project is held)."""
        project = key.project or ""
        if project in self.holds:
            return math.inf
        return max(self.limits.until(project, key.signal, now=now), self.lane(key).backoff_until)

    def project_state(self, project: str, now: float) -> str:
        """active | rate_limited | backing_off | held:<reason> (either signal counts)."""
        hold = self.holds.get(project)
        if hold is not None:
            return f"held:{hold.reason}"
        if any(self.limits.until(project, signal, now=now) > now for signal in Signal):
            return "rate_limited"
        lanes = [self.lanes.get(QueueKey.for_project(signal, project)) for signal in Signal]
        if any(lane is not None and lane.failures > 0 for lane in lanes):
            return "backing_off"
        return "active"

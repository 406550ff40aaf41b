"""Fault injection: scripted ingest rate limits, failures, delays, accept-then-drop and Web API faults.

Every fault either expires (`seconds`), runs out (`count`), or lasts until `clear()`. Times use
`time.monotonic()`, except the Web API's reset header, which Sentry sends as epoch seconds.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sentryroute.emulator.state import State

# The data categories Relay counts for the OTLP integration items (reference §3.2).
TRACE_CATEGORIES = ("span", "span_indexed")
LOG_CATEGORIES = ("log_item", "log_byte")
SCOPES = ("organization", "project", "key")


def _categories(value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split(";") if isinstance(value, str) else list(value)
    return tuple(c.strip() for c in items if c.strip())


@dataclass
class RateLimit:
    """One active quota, as Relay caches it for a project or a whole organization."""

    project_id: str
    org: str | None  # set when scope == "organization": the limit covers every project of the org
    until: float
    categories: tuple[str, ...]  # empty = every category
    scope: str
    reason_code: str | None
    retry_after_header: bool
    enforced: bool = True  # False: only announced in X-Sentry-Rate-Limits on 202 responses

    def covers(self, project_id: str, org: str | None) -> bool:
        if self.scope == "organization" and self.org is not None:
            return org == self.org
        return project_id == self.project_id

    def limits_logs(self) -> bool:
        return not self.categories or any(c in LOG_CATEGORIES for c in self.categories)

    def seconds_left(self, now: float) -> int:
        return max(1, math.ceil(self.until - now))

    def header_item(self, now: float) -> str:
        """`<retry_after>:<categories>:<scope>[:<reason_code>]` (reference §3.1)."""
        item = f"{self.seconds_left(now)}:{';'.join(self.categories)}:{self.scope}"
        return f"{item}:{self.reason_code}" if self.reason_code else item


@dataclass
class _Countdown:
    """A fault that applies `count` more times and/or until a deadline; both None = until cleared."""

    count: int | None
    until: float | None

    def alive(self, now: float) -> bool:
        return (self.count is None or self.count > 0) and (self.until is None or now < self.until)

    def take(self, now: float) -> bool:
        if not self.alive(now):
            return False
        if self.count is not None:
            self.count -= 1
        return True


@dataclass
class _Failure(_Countdown):
    project_id: str | None = None
    status: int = 503


@dataclass
class _ApiFault(_Countdown):
    path_regex: re.Pattern[str] = re.compile(".*")
    status: int = 500
    reset_in: float = 1.0
    answer_lost: bool = False  # the request is carried out, then its answer replaced by `status` (a proxy's 502)


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + float(seconds)


def _pid(project_id: str | int | None) -> str | None:
    return None if project_id is None else str(project_id)


class Faults:
    """Scripted misbehaviour. Python API and the HTTP control API (`/_emulator/api/faults/<kind>`) share it."""

    KINDS = (
        "rate_limit",
        "rate_limit_bare",
        "fail",
        "delay",
        "stall",
        "accept_then_drop",
        "api_rate_limit",
        "api_fail",
    )

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._rate_limits: list[RateLimit] = []
        self._bare: dict[str, int] = {}
        self._failures: list[_Failure] = []
        self._delays: dict[str | None, float] = {}
        self._stalls: set[str | None] = set()
        self._drops: dict[str, float] = {}
        self._api_limits: list[_ApiFault] = []
        self._api_failures: list[_ApiFault] = []

    # --- scripting -------------------------------------------------------------------------------------

    def rate_limit(
        self,
        project_id: str | int,
        seconds: float = 5.0,
        categories: str | Sequence[str] = "",
        scope: str = "project",
        reason_code: str | None = None,
        retry_after_header: bool = True,
        enforce: bool = True,
    ) -> None:
        """Ingest answers 429 + `X-Sentry-Rate-Limits` for `seconds` (traces: any limit; logs: log limits only).

        With `enforce=False` data is accepted and the limit only rides along on the 202 responses.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        pid = str(project_id)
        project = self._state.projects_by_id.get(pid)
        limit = RateLimit(
            project_id=pid,
            org=project.org if project and scope == "organization" else None,
            until=time.monotonic() + float(seconds),
            categories=_categories(categories),
            scope=scope,
            reason_code=reason_code,
            retry_after_header=bool(retry_after_header),
            enforced=bool(enforce),
        )
        with self._lock:
            self._rate_limits.append(limit)

    def rate_limit_bare(self, project_id: str | int, count: int = 1) -> None:
        """The next `count` ingest requests get 429 with neither header (clients must fall back to 60 s)."""
        with self._lock:
            self._bare[str(project_id)] = self._bare.get(str(project_id), 0) + int(count)

    def fail(
        self, project_id: str | int | None, status: int = 503, count: int | None = None, seconds: float | None = None
    ) -> None:
        """Ingest answers `status` (503 = Relay's "failed to queue envelope"); None project = every project."""
        with self._lock:
            self._failures.append(
                _Failure(count=count, until=_deadline(seconds), project_id=_pid(project_id), status=int(status))
            )

    def delay(self, project_id: str | int | None = None, seconds: float = 1.0) -> None:
        """Answer ingest requests only after `seconds` (None project = every project) until cleared."""
        with self._lock:
            self._delays[_pid(project_id)] = float(seconds)

    def stall(self, project_id: str | int | None = None) -> None:
        """Answer no ingest request (None project = every project) until `unstall` or `clear`: a project whose
        exports take as long as the test wants, without the test waiting on the clock."""
        with self._lock:
            self._stalls.add(_pid(project_id))

    def unstall(self, project_id: str | int | None = None) -> None:
        """Stalled ingest requests of `project_id` are answered now."""
        with self._lock:
            self._stalls.discard(_pid(project_id))

    def accept_then_drop(self, project_id: str | int, seconds: float) -> None:
        """For `seconds`, answer 202 but record nothing, as Relay does while a new key's config is not cached."""
        with self._lock:
            self._drops[str(project_id)] = time.monotonic() + float(seconds)

    def api_rate_limit(self, path_regex: str = ".*", count: int = 1, reset_in: float = 1.0) -> None:
        """The next `count` matching Web API requests get 429 with a reset `reset_in` seconds away."""
        with self._lock:
            self._api_limits.append(
                _ApiFault(count=int(count), until=None, path_regex=re.compile(path_regex), reset_in=float(reset_in))
            )

    def api_fail(self, path_regex: str, status: int = 500, count: int = 1, answer_lost: bool = False) -> None:
        """The next `count` Web API requests whose path matches `path_regex` get `status`.

        `answer_lost`: the request is carried out first (a project really is created) and only its answer is
        replaced — what a client sees when a proxy or load balancer times out after Sentry did the work.
        """
        with self._lock:
            self._api_failures.append(
                _ApiFault(
                    count=int(count),
                    until=None,
                    path_regex=re.compile(path_regex),
                    status=int(status),
                    answer_lost=bool(answer_lost),
                )
            )

    def clear(self) -> None:
        with self._lock:
            self._rate_limits.clear()
            self._bare.clear()
            self._failures.clear()
            self._delays.clear()
            self._stalls.clear()
            self._drops.clear()
            self._api_limits.clear()
            self._api_failures.clear()

    # --- queries used by the servers -------------------------------------------------------------------

    def ingest_delay(self, project_id: str) -> float:
        with self._lock:
            return self._delays.get(project_id, self._delays.get(None, 0.0))

    def stalled(self, project_id: str) -> bool:
        with self._lock:
            return project_id in self._stalls or None in self._stalls

    def drops(self, project_id: str) -> bool:
        with self._lock:
            return time.monotonic() < self._drops.get(project_id, 0.0)

    def active_rate_limits(self, project_id: str, *, signal: str) -> list[RateLimit]:
        """The limits that turn this request into a 429 (reference §3.3): traces any, logs only log limits."""
        project = self._state.projects_by_id.get(project_id)
        org = project.org if project else None
        now = time.monotonic()
        with self._lock:
            self._rate_limits = [limit for limit in self._rate_limits if limit.until > now]
            active = [limit for limit in self._rate_limits if limit.covers(project_id, org)]
        if signal == "logs":
            return [limit for limit in active if limit.limits_logs()]
        return active

    def take_bare_rate_limit(self, project_id: str) -> bool:
        with self._lock:
            left = self._bare.get(project_id, 0)
            if left <= 0:
                return False
            self._bare[project_id] = left - 1
            return True

    def take_failure(self, project_id: str) -> int | None:
        """Status of the injected failure for this request, if any."""
        now = time.monotonic()
        with self._lock:
            for failure in self._failures:
                if failure.project_id in (None, project_id) and failure.take(now):
                    return failure.status
        return None

    def take_api_rate_limit(self, path: str) -> float | None:
        """Seconds until the injected limit "resets", if this Web API request is to be limited."""
        now = time.monotonic()
        with self._lock:
            for fault in self._api_limits:
                if fault.path_regex.search(path) and fault.take(now):
                    return fault.reset_in
        return None

    def take_api_failure(self, path: str) -> tuple[int, bool] | None:
        """(status, answer_lost) of the injected failure for this request, if any."""
        now = time.monotonic()
        with self._lock:
            for fault in self._api_failures:
                if fault.path_regex.search(path) and fault.take(now):
                    return fault.status, fault.answer_lost
        return None

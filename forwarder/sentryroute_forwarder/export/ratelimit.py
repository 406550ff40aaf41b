"""Sentry's ingestion rate limits: parsing `X-Sentry-Rate-Limits` / `Retry-After`, and the deadlines they impose.

Follows the grammar of sentry-reference Part A §3.1 and the upstream exporter's parsing table (Part B §4),
with two deliberate differences that stop data loss:
- categories map to what an OTLP request is counted as: traces ← `span`, `span_indexed`, `transaction`;
  logs ← `log_item`, `log_byte`; an empty category list means both (upstream ignored `span`, so a span
  quota never slowed it down and every request was refused);
- a 429 always limits the signal that was sent, and only that one when the answer says nothing more
  precise: Relay answers a traces request 429 while *any* limit of the project is active, and a logs 429 says
  nothing about traces.
Deadlines use `time.monotonic()`; HTTP dates in `Retry-After` are converted with the wall clock once.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from sentryroute_forwarder.model import Signal

__all__ = [
    "CATEGORY_SIGNALS",
    "QuotaLimit",
    "RateLimits",
    "limits_from_response",
    "org_of",
    "parse_rate_limits",
    "parse_retry_after",
]

#: Sentry data categories that an OTLP traces or logs request is counted under (reference §3.2).
CATEGORY_SIGNALS: Mapping[str, frozenset[Signal]] = {
    "": frozenset(Signal),
    "span": frozenset({Signal.TRACES}),
    "span_indexed": frozenset({Signal.TRACES}),
    "transaction": frozenset({Signal.TRACES}),
    "log_item": frozenset({Signal.LOGS}),
    "log_byte": frozenset({Signal.LOGS}),
}

_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
# Above this a Go duration overflows: upstream (and we) read it as "no wait".
_MAX_SECONDS = 9.2e9


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    """One quota from a response: no data of `signals` before `seconds` from now."""

    seconds: float
    signals: frozenset[Signal]
    organization: bool = False  # scope `organization`: every project of the org


def _retry_after_field(text: str) -> float | None:
    """The `retry_after` field: a float, ceiled; negative, infinite, NaN or overflowing values mean 0."""
    text = text.strip()
    if not _FLOAT_RE.fullmatch(text):
        return None
    seconds = float(text)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > _MAX_SECONDS:
        return 0.0
    return float(math.ceil(seconds))


def parse_rate_limits(header: str) -> list[QuotaLimit]:
    """Parse `X-Sentry-Rate-Limits`: `retry_after:categories:scope[:reason[:namespaces]]`, comma-separated.

    Entries with an unparsable `retry_after` are skipped; unknown categories are ignored (an entry naming
    only unknown ones limits nothing); an empty category list means every signal.
    """
    limits = []
    for entry in header.split(","):
        entry = entry.strip()
        if not entry:
            continue
        fields = entry.split(":")
        seconds = _retry_after_field(fields[0])
        if seconds is None:
            continue
        names = fields[1].split(";") if len(fields) > 1 else [""]
        # An empty name is the "all categories" category, as in Relay and the upstream exporter.
        signals = frozenset[Signal]().union(*(CATEGORY_SIGNALS.get(n.strip().lower(), ()) for n in names))
        if not signals:
            continue
        scope = fields[2].strip().lower() if len(fields) > 2 else ""
        limits.append(QuotaLimit(seconds, signals, organization=scope == "organization"))
    return limits


def parse_retry_after(value: str | None, *, wall_now: float | None = None) -> float | None:
    """`Retry-After`: non-negative integer seconds or an HTTP date; None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    now = time.time() if wall_now is None else wall_now
    return max(0.0, when.timestamp() - now)


def limits_from_response(
    status: int, headers: Mapping[str, str], *, sent: Signal, default: float, wall_now: float | None = None
) -> list[QuotaLimit]:
    """Every limit an answer imposes. `X-Sentry-Rate-Limits` counts on any status; a 429 also limits `sent`.

    For a 429 whose header does not limit `sent`, `Retry-After` decides, else `default` (60 s in Sentry's SDKs).
    """
    header = headers.get("X-Sentry-Rate-Limits")
    limits = parse_rate_limits(header) if header is not None else []
    if status == 429 and not any(sent in limit.signals and limit.seconds > 0 for limit in limits):
        seconds = parse_retry_after(headers.get("Retry-After"), wall_now=wall_now)
        limits.append(QuotaLimit(default if seconds is None or seconds <= 0 else seconds, frozenset({sent})))
    return limits


def org_of(project: str) -> str:
    """The org part of a project key `org/slug` (or `connection:org/slug`): the scope of org-wide limits."""
    return project.rpartition("/")[0] or project


class RateLimits:
    """Deadlines per (project or org, signal): nothing of that signal is sent to the project before it."""

    def __init__(self) -> None:
        self._deadlines: dict[tuple[str, str, Signal], float] = {}

    def impose(self, project: str, limits: Iterable[QuotaLimit], *, now: float | None = None) -> dict[Signal, float]:
        """Merge limits (the later deadline wins); returns the seconds each signal's wait grew by."""
        now = time.monotonic() if now is None else now
        grown: dict[Signal, float] = {}
        for limit in limits:
            scope = ("org", org_of(project)) if limit.organization else ("project", project)
            deadline = now + limit.seconds
            for signal in limit.signals:
                before = self.until(project, signal, now=now)
                key = (*scope, signal)
                if deadline > self._deadlines.get(key, 0.0):
                    self._deadlines[key] = deadline
                added = deadline - max(before, now)
                if added > 0:
                    grown[signal] = grown.get(signal, 0.0) + added
        return grown

    def forget(self, project: str) -> None:
        """Drop a project's own limits (it was re-created under a new id); org-wide limits stay."""
        for key in [key for key in self._deadlines if key[:2] == ("project", project)]:
            del self._deadlines[key]

    def active(self, *, now: float | None = None) -> list[tuple[str, str, str, float]]:
        """(scope, project or org, signal, seconds left) of every limit still running: for the metrics."""
        now = time.monotonic() if now is None else now
        return [
            (scope, target, signal.value, deadline - now)
            for (scope, target, signal), deadline in list(self._deadlines.items())
            if deadline > now
        ]

    def until(self, project: str, signal: Signal, *, now: float | None = None) -> float:
        """The deadline for `signal` to `project` (0.0 when not limited); expired entries are forgotten."""
        if not self._deadlines:  # the usual case, asked for every part of every request
            return 0.0
        now = time.monotonic() if now is None else now
        latest = 0.0
        for key in (("project", project, signal), ("org", org_of(project), signal)):
            deadline = self._deadlines.get(key)
            if deadline is None:
                continue
            if deadline <= now:
                del self._deadlines[key]
            else:
                latest = max(latest, deadline)
        return latest

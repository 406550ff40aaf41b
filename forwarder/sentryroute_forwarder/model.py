"""Types that cross the forwarder's stages: receive → route → queue → export.

The unit of data after routing is a :class:`RoutedPart`: the original wire bytes of one or more whole
resources (`ResourceSpans` / `ResourceLogs` records, each with its field-1 tag and length prefix), so that
joining parts is byte concatenation and the payload alone is a valid `Export*ServiceRequest` body. Spans
are never decoded on the hot path: intake walks them (route/wirecheck.py) and reads each `Resource`'s routing
attributes off the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sentryroute.routes import RoutesTable


class Signal(enum.StrEnum):
    TRACES = "traces"
    LOGS = "logs"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the router sends one resource.

    - ``project``: deliver to ``project`` (an ``org/slug`` key of the table's ``projects``).
    - ``hold``: keep it (bounded) until a table routes it; ``reason`` is ``pending`` or ``unrouted``.
    - ``drop``: count and discard; ``reason`` is ``unrouted`` or ``refused`` (a value the operator will not create).
    """

    kind: Literal["project", "hold", "drop"]
    project: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class RoutedPart:
    """Resources of one signal, from one request, that go to one destination."""

    signal: Signal
    destination: Destination
    payload: bytes  # concatenated field-1 records: a valid Export{Trace,Logs}ServiceRequest body
    items: int  # spans or log records inside
    resources: int  # resources inside (413 halving stops at one)
    attribute: str | None = None  # routing attribute that decided (for holds and reports)
    value: str | None = None  # its value, when the resource had one as a string
    namespace: str | None = None  # the namespace its resources were routed by (SPEC §6.1), None: none/unknown


class RetryLater(Exception):
    """The client should send this request again later: HTTP `status` (429 or 503) with Retry-After.

    `retry_after` is the queue's estimate of the seconds until there is room (None: no estimate); the
    receivers turn it into a jittered hint no shorter than `--retry-after`.
    """

    status = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Overloaded(RetryLater):
    """A bound on queued data is reached (HTTP 429 / RESOURCE_EXHAUSTED)."""

    status = 429


class Unavailable(RetryLater):
    """Accepted data cannot be stored right now (queue directory full or read-only: 503 / UNAVAILABLE)."""


class Pipeline(Protocol):
    """What the receivers hand accepted data to (implemented in `queue/`).

    A queue may be backed by memory or by a disk log (`--queue-dir`): everything it accepts is owned by it
    until exported, dropped with a counted reason, or handed back on shutdown.
    """

    def has_room(self, nbytes: int) -> bool:
        """False once the global bound (`--max-bytes`, `--max-disk-bytes`) would be exceeded: 429."""
        ...

    def retry_after(self, nbytes: int) -> float | None:
        """Estimated seconds until `nbytes` more fit (None: no estimate), for a refused request."""
        ...

    def offer(self, parts: Sequence[RoutedPart], *, hold_limit: float | None = None) -> Awaitable[None] | None:
        """Take ownership of routed parts (called once per request, after `has_room`), or raise `RetryLater`
        (none taken). What it returns, when not None, must be awaited before the client is answered (the
        data is then as durable as configured, and pacing has let the answer go; `hold_limit`: the longest
        the client can wait for that, in seconds)."""
        ...

    def apply_table(self, table: RoutesTable) -> None:
        """A new routes table: re-resolve queued and held data (keys, URLs, re-routing by stored value)."""
        ...

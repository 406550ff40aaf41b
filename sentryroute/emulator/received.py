"""The record of what each project received, so tests and the demo can assert where telemetry went."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str
    name: str
    service_name: str
    resource: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedLog:
    trace_id: str
    span_id: str
    body: str
    severity_number: int
    severity_text: str
    service_name: str
    resource: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestRequest:
    """One HTTP request to an ingest endpoint, whatever its outcome."""

    project_id: str
    signal: str  # "traces" | "logs"
    path: str
    status: int
    content_type: str
    content_encoding: str
    raw_size: int  # bytes on the wire (before decompression)
    public_key: str | None
    time: float  # time.monotonic() when answered
    outcome: str = ""  # "accepted", "invalid", "dropped", or why it was rejected
    body: bytes = b""  # decompressed, with `EmulatorConfig.keep_bodies` (whatever the answer, once it was read)


def _pid(project_id: str | int) -> str:
    return str(project_id)


class Received:
    """Thread-safe per-project store of decoded spans and logs, request log and drop counters."""

    def __init__(self, *, record_limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._record_limit = record_limit
        self._spans: dict[str, list[ReceivedSpan]] = {}
        self._logs: dict[str, list[ReceivedLog]] = {}
        self._span_count: Counter[str] = Counter()
        self._log_count: Counter[str] = Counter()
        self._requests: list[IngestRequest] = []
        self._invalid: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()

    def add_spans(self, project_id: str, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._span_count[project_id] += len(spans)
            kept = self._spans.setdefault(project_id, [])
            kept.extend(spans[: max(0, self._record_limit - len(kept))])

    def add_logs(self, project_id: str, logs: list[ReceivedLog]) -> None:
        with self._lock:
            self._log_count[project_id] += len(logs)
            kept = self._logs.setdefault(project_id, [])
            kept.extend(logs[: max(0, self._record_limit - len(kept))])

    def add_request(self, request: IngestRequest) -> None:
        with self._lock:
            self._requests.append(request)
            if request.outcome == "invalid":
                self._invalid[request.project_id] += 1
            elif request.outcome == "dropped":
                self._dropped[request.project_id] += 1

    def spans(self, project_id: str | int) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans.get(_pid(project_id), ()))

    def logs(self, project_id: str | int) -> list[ReceivedLog]:
        with self._lock:
            return list(self._logs.get(_pid(project_id), ()))

    def requests(self, project_id: str | int | None = None) -> list[IngestRequest]:
        with self._lock:
            if project_id is None:
                return list(self._requests)
            return [r for r in self._requests if r.project_id == _pid(project_id)]

    def span_count(self, project_id: str | int) -> int:
        """Every span accepted for the project, including those past the record limit."""
        with self._lock:
            return self._span_count[_pid(project_id)]

    def log_count(self, project_id: str | int) -> int:
        with self._lock:
            return self._log_count[_pid(project_id)]

    def invalid(self, project_id: str | int) -> int:
        """Requests whose payload could not be decoded (answered 202 and dropped as Relay does, or 400 with
        `reject_undecodable`)."""
        with self._lock:
            return self._invalid[_pid(project_id)]

    def dropped(self, project_id: str | int) -> int:
        """Requests answered 202 but not recorded (accept-then-drop)."""
        with self._lock:
            return self._dropped[_pid(project_id)]

    def service_names(self, project_id: str | int) -> list[str]:
        with self._lock:
            pid = _pid(project_id)
            names = {s.service_name for s in self._spans.get(pid, ())}
            names |= {entry.service_name for entry in self._logs.get(pid, ())}
            return sorted(names)

    def project_ids(self) -> list[str]:
        """Every project id that got at least one ingest request."""
        with self._lock:
            return sorted({r.project_id for r in self._requests}, key=lambda p: (len(p), p))

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self._logs.clear()
            self._requests.clear()
            self._span_count.clear()
            self._log_count.clear()
            self._invalid.clear()
            self._dropped.clear()

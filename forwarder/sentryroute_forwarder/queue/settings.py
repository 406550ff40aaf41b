"""Queue bounds and batching, read from the forwarder's settings by attribute name (no import of `config`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["QueueSettings", "QueueSettingsSource"]


class QueueSettingsSource(Protocol):
    @property
    def max_bytes(self) -> int: ...
    @property
    def max_hold(self) -> float: ...
    @property
    def batch_max_bytes(self) -> int: ...
    @property
    def batch_max_items(self) -> int: ...
    @property
    def batch_timeout(self) -> float: ...


@dataclass(frozen=True, slots=True)
class QueueSettings:
    max_bytes: int = 256 * 1024 * 1024  # global bound on queued and held data (SPEC §6 `--max-bytes`)
    max_hold: float = 300.0  # oldest data a rate-limited, failing or held queue keeps, seconds
    batch_max_bytes: int = 1024 * 1024  # one upstream request, before compression
    batch_max_items: int = 8192
    batch_timeout: float = 0.2  # how long a non-full batch waits for more data, seconds

    @classmethod
    def from_settings(cls, settings: QueueSettingsSource) -> QueueSettings:
        return cls(
            max_bytes=settings.max_bytes,
            max_hold=settings.max_hold,
            batch_max_bytes=settings.batch_max_bytes,
            batch_max_items=settings.batch_max_items,
            batch_timeout=settings.batch_timeout,
        )

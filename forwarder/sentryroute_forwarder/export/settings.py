"""Export timeouts, retry and rate-limit defaults, read from the forwarder's settings by attribute name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ExportSettings", "ExportSettingsSource"]


class ExportSettingsSource(Protocol):
    @property
    def export_timeout(self) -> float: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def retry_initial(self) -> float: ...
    @property
    def retry_max(self) -> float: ...
    @property
    def default_rate_limit(self) -> float: ...
    @property
    def gzip_level(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ExportSettings:
    export_timeout: float = 30.0  # whole request, seconds (SPEC §6)
    connect_timeout: float = 5.0
    retry_initial: float = 0.5  # first back-off after a 5xx or a transport error, seconds
    retry_max: float = 30.0
    default_rate_limit: float = 60.0  # a 429 that says neither how long nor what (reference §3.1)
    gzip_level: int = 1  # isal levels 0-3

    @classmethod
    def from_settings(cls, settings: ExportSettingsSource) -> ExportSettings:
        return cls(
            export_timeout=settings.export_timeout,
            connect_timeout=settings.connect_timeout,
            retry_initial=settings.retry_initial,
            retry_max=settings.retry_max,
            default_rate_limit=settings.default_rate_limit,
            gzip_level=settings.gzip_level,
        )

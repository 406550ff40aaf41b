"""The 1 MiB ConfigMap limit (SPEC §3): warn at 80 %, and never try to write a table that cannot fit."""

from __future__ import annotations

from dataclasses import dataclass

#: Kubernetes rejects ConfigMaps whose data exceeds 1 MiB.
CONFIGMAP_LIMIT_BYTES = 1024 * 1024
WARN_FRACTION = 0.8


@dataclass(frozen=True)
class SizeCheck:
    size: int
    limit: int

    @property
    def too_large(self) -> bool:
        return self.size > self.limit

    @property
    def near_limit(self) -> bool:
        return self.size >= self.limit * WARN_FRACTION

    def describe(self) -> str:
        return f"routes table is {self.size} bytes, {100 * self.size // self.limit}% of the {self.limit}-byte limit"


def check_size(payload: str, *, limit: int = CONFIGMAP_LIMIT_BYTES) -> SizeCheck:
    """Measure `payload` as the API server does: UTF-8 bytes."""
    return SizeCheck(size=len(payload.encode("utf-8")), limit=limit)

"""Queue bounds and batching (SPEC §6): the flags of the queue, declared once (see `options`)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import model_validator

from sentryroute_forwarder.export.settings import ExportSettings
from sentryroute_forwarder.options import (
    Bytes,
    FilePath,
    Seconds,
    SettingsGroup,
    Switch,
    Text,
    option,
    whole_number,
)

__all__ = ["PipelineSettings", "QueueSettings"]


class QueueSettings(SettingsGroup):
    title = "queues and holding"

    queue_dir: FilePath | None = option(None, "queue accepted data on disk in this directory (replayed on start)")
    max_disk_bytes: Bytes = option("1GiB", "bound on the --queue-dir's size; above it clients get 429")
    queue_fsync: Switch = option(False, "with --queue-dir: answer clients only after an fsync (group commit)")
    max_bytes: Bytes = option(
        "256MiB",
        "bound on queued and held data in memory (with --queue-dir: payloads kept in memory, the rest read back)",
    )
    pace_bytes: Bytes = option(
        "16MiB", "above this much queued data, answers wait while their project's export catches up (pacing)"
    )
    pace_timeout: Seconds = option("2s", "longest an answer waits for pacing (then it is given anyway)")
    max_hold: Seconds = option("5m", "longest a rate-limited, failing or held project's data is kept")
    batch_max_bytes: Bytes = option("1MiB", "largest upstream request body, before compression")
    batch_max_items: Annotated[int, Text("N", whole_number(1, 1_000_000)), Ge(1), Le(1_000_000)] = option(
        "8192", "most items in one upstream request"
    )
    batch_timeout: Seconds = option("200ms", "how long a batch waits to fill up")

    @model_validator(mode="after")
    def _fsync_needs_a_directory(self) -> QueueSettings:
        if self.queue_fsync and self.queue_dir is None:
            raise ValueError("--queue-fsync needs --queue-dir")
        return self

    @property
    def bound(self) -> int:
        """The global bound admission checks: the disk's with a queue directory, else memory's."""
        return self.max_disk_bytes if self.queue_dir is not None else self.max_bytes


class PipelineSettings(QueueSettings, ExportSettings):
    """Everything the queue pipeline reads (the forwarder's settings are a superset)."""

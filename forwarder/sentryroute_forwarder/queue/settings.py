"""Queue bounds and batching (SPEC §6): the flags of the queue, declared once (see `options`)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

from sentryroute_forwarder.export.settings import ExportSettings
from sentryroute_forwarder.options import Bytes, FilePath, Seconds, SettingsGroup, Text, option, whole_number

__all__ = ["PipelineSettings", "QueueSettings"]


class QueueSettings(SettingsGroup):
    title = "queues and holding"

    queue_dir: FilePath | None = option(None, "directory for a durable queue (not yet durable: kept in memory)")
    max_bytes: Bytes = option("256MiB", "global bound on queued and held data")
    max_hold: Seconds = option("5m", "longest a rate-limited, failing or held project's data is kept")
    batch_max_bytes: Bytes = option("1MiB", "largest upstream request body, before compression")
    batch_max_items: Annotated[int, Text("N", whole_number(1, 1_000_000)), Ge(1), Le(1_000_000)] = option(
        "8192", "most items in one upstream request"
    )
    batch_timeout: Seconds = option("200ms", "how long a batch waits to fill up")


class PipelineSettings(QueueSettings, ExportSettings):
    """Everything the queue pipeline reads (the forwarder's settings are a superset)."""

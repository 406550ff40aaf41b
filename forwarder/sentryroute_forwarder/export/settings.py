"""Export timeouts, retry and rate-limit defaults (SPEC §6): the flags of exporting, declared once (see `options`)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

from sentryroute_forwarder.options import Seconds, SettingsGroup, Text, option, whole_number

__all__ = ["ExportSettings"]


class ExportSettings(SettingsGroup):
    title = "exporting to Sentry"

    export_timeout: Seconds = option("30s", "timeout of one upstream request")
    connect_timeout: Seconds = option("5s", "connect timeout of upstream requests")
    retry_initial: Seconds = option("500ms", "first back-off after an upstream failure")
    retry_max: Seconds = option("30s", "longest back-off after upstream failures")
    # A 429 that says neither how long nor what (sentry reference §3.1).
    default_rate_limit: Seconds = option("60s", "rate limit assumed for a 429 that names none")
    gzip_level: Annotated[int, Text("LEVEL", whole_number(0, 3)), Ge(0), Le(3)] = option(
        "1", "gzip level of upstream bodies (ISA-L levels 0-3)"
    )

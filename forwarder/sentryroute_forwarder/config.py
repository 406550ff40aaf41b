"""The forwarder's settings: every command-line flag (SPEC §6), parsed and validated once at start-up.

Each option is one pydantic field in the group of the code that reads it (`receive.settings`,
`queue.settings`, `export.settings`, and the groups below); `ForwarderSettings` is all of them. The flags,
their `SENTRYROUTE_*` environment variables, defaults and help all come from those fields (`options`), so a
default cannot differ between a test that builds `ForwarderSettings(...)` and the command line.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Self

from pydantic import model_validator

from sentryroute.routes import NAMESPACE_FROM
from sentryroute.selectors import LabelSelector, parse_label_selector
from sentryroute_forwarder.options import (
    Address,
    ConfigError,
    ConfigMapRef,
    FilePath,
    ListenAddress,
    ObjectRef,
    Seconds,
    SettingsGroup,
    Text,
    one_of,
    option,
)
from sentryroute_forwarder.queue.settings import PipelineSettings
from sentryroute_forwarder.receive.settings import ReceiverSettings

__all__ = ["Address", "ConfigError", "ForwarderSettings", "ObjectRef", "add_arguments"]


def _log_level(text: str) -> str:
    return one_of("debug", "info", "warning", "error", "critical")(text).upper()


class TableSettings(SettingsGroup):
    """Where the routes table comes from (SPEC §3)."""

    title = "routes table"

    routes: FilePath = option("/etc/sentryroute/routes.json", "routes table file (the mounted ConfigMap)")
    routes_configmap: ConfigMapRef | None = option(None, "watch this ConfigMap (NS/NAME) instead of the file")
    routes_poll_interval: Seconds = option("1s", "how often the routes file is checked for changes")


class ReportSettings(SettingsGroup):
    """The report channel to the operator (SPEC §4)."""

    title = "report to the operator"

    report_configmap: ConfigMapRef | None = option(
        None,
        "ConfigMap (NS/NAME, the operator's sentryroute-requests) where the forwarder reports the values it holds "
        "(no route yet, or a project Sentry refused), so the operator can provision or repair them",
    )
    report_interval: Seconds = option("5s", "how often held values are reported to --report-configmap")


def _relay_selector(text: str) -> LabelSelector:
    """A non-empty label selector: an empty one would select every pod, i.e. trust every client."""
    selector = parse_label_selector(text)
    if not selector.requirements:
        raise ValueError("an empty selector would trust every pod; name the relays' labels")
    return selector


class TenancySettings(SettingsGroup):
    """Where a resource's namespace comes from (SPEC §6.1)."""

    title = "tenancy"

    namespace_from: Annotated[str, Text("MODE", one_of(*NAMESPACE_FROM))] = option(
        "attribute",
        "where a resource's namespace comes from: attribute (k8s.namespace.name as sent, trusting) or peer "
        "(the sending pod's namespace, from a Pod watch)",
    )
    trusted_relays: Annotated[LabelSelector, Text("SELECTOR", _relay_selector)] | None = option(
        None, "label selector of Pods (e.g. agent Collectors) whose resources' k8s.namespace.name is trusted (peer)"
    )
    peer_wait: Seconds = option("2s", "how long a request from a not-yet-seen pod address waits for the Pod watch")

    @model_validator(mode="after")
    def _relays_need_peer_mode(self) -> Self:
        if self.trusted_relays is not None and self.namespace_from != "peer":
            raise ValueError("--trusted-relays needs --namespace-from peer")
        return self

    @property
    def peer_mode(self) -> bool:
        """True with `--namespace-from peer`: namespaces come from the sending pod (SPEC §6.1)."""
        return self.namespace_from == "peer"


class ProcessSettings(SettingsGroup):
    title = "process"

    admin: ListenAddress = option("0.0.0.0:8888", "admin listener: /metrics, /healthz, /readyz")
    shutdown_timeout: Seconds = option("20s", "how long shutdown may spend flushing queued data")
    log_format: Annotated[str, Text("FORMAT", one_of("text", "json"))] = option(
        "text", "log format: text or json (one object per line)"
    )
    log_level: Annotated[str, Text("LEVEL", _log_level)] = option("info", "log level: debug, info, warning, error")


class ForwarderSettings(
    TableSettings, ReceiverSettings, PipelineSettings, ReportSettings, TenancySettings, ProcessSettings
):
    """Validated settings; durations in seconds, sizes in bytes. Defaults are those of the flags."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare every option on `parser` (values stay strings until `ForwarderSettings.from_args`)."""
    ForwarderSettings.add_arguments(parser)

"""The forwarder's settings: every command-line flag (SPEC §6), parsed and validated once at start-up.

Each option is declared once in `OPTIONS` (flag, default text, converter, help); the argparse flags, the
environment variables (through `sentryroute.options`) and the dataclass defaults all come from it, so a
default cannot differ between a test that builds `ForwarderSettings(...)` and the command line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sentryroute.durations import parse_duration, parse_size
from sentryroute.options import add_option

__all__ = ["OPTIONS", "Address", "ConfigError", "ForwarderSettings", "ObjectRef", "add_arguments"]


class ConfigError(ValueError):
    """A flag value that cannot be used; the message names the flag."""


class Address(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ObjectRef(NamedTuple):
    """`NAMESPACE/NAME` of a Kubernetes object (a ConfigMap)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


_ADDRESS_RE = re.compile(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>\d{1,5})")
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def parse_address(text: str) -> Address:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces); port 0 picks a free port."""
    match = _ADDRESS_RE.fullmatch(text.strip())
    if not match or int(match["port"]) > 65535:
        raise ValueError(f"invalid address {text!r}: use HOST:PORT, e.g. 0.0.0.0:4318")
    host = match["v6"] or match["host"] or "0.0.0.0"
    return Address(host, int(match["port"]))


def parse_object_ref(text: str) -> ObjectRef:
    namespace, _, name = text.strip().partition("/")
    if not _DNS_LABEL_RE.fullmatch(namespace) or not _DNS_SUBDOMAIN_RE.fullmatch(name):
        raise ValueError(f"invalid object reference {text!r}: use NAMESPACE/NAME")
    return ObjectRef(namespace, name)


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    return seconds


def _positive_size(text: str) -> int:
    size = parse_size(text)
    if size <= 0:
        raise ValueError(f"size {text!r} must be greater than zero")
    return size


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()) or not low <= int(text) <= high:
            raise ValueError(f"{text!r} is not a whole number from {low} to {high}")
        return int(text)

    return convert


def _one_of(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text.strip().lower() not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text.strip().lower()

    return convert


def _log_level(text: str) -> str:
    return _one_of("debug", "info", "warning", "error", "critical")(text).upper()


class Option(NamedTuple):
    flag: str
    default: str | None  # as a user would write it; None: unset
    convert: Callable[[str], Any]
    help: str

    @property
    def field(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def metavar(self) -> str:
        """What `--help` shows for the value, by the kind of value."""
        return _METAVARS.get(self.convert, "VALUE")

    def default_value(self) -> Any:
        return None if self.default is None else self.convert(self.default)


OPTIONS: tuple[Option, ...] = (
    # Where the routes table comes from (SPEC §3).
    Option("--routes", "/etc/sentryroute/routes.json", Path, "routes table file (the mounted ConfigMap)"),
    Option("--routes-configmap", None, parse_object_ref, "watch this ConfigMap (NS/NAME) instead of the file"),
    Option("--routes-poll-interval", "1s", _positive_duration, "how often the routes file is checked for changes"),
    # Listeners.
    Option("--otlp-http", "0.0.0.0:4318", parse_address, "OTLP/HTTP listener"),
    Option("--otlp-grpc", "0.0.0.0:4317", parse_address, "OTLP/gRPC listener"),
    Option("--admin", "0.0.0.0:8888", parse_address, "admin listener: /metrics, /healthz, /readyz"),
    Option("--tls-cert", None, Path, "TLS certificate (PEM) for both receivers; reloaded on change"),
    Option("--tls-key", None, Path, "TLS private key (PEM) for --tls-cert"),
    Option("--client-ca", None, Path, "CA bundle (PEM): require client certificates signed by it (mTLS)"),
    Option("--auth-token-file", None, Path, "require 'Authorization: Bearer <token>' with the token in this file"),
    Option("--max-request-bytes", "16MiB", _positive_size, "largest request body, before and after inflating"),
    Option(
        "--read-timeout",
        "30s",
        _positive_duration,
        "longest a client may take to send headers or a body; also how long an idle connection stays open",
    ),
    Option("--retry-after", "1s", _positive_duration, "Retry-After given to clients answered 503 or 429"),
    # Queues and holding (handed to the queue).
    Option("--queue-dir", None, Path, "directory for a durable queue (not yet durable: kept in memory)"),
    Option("--report-configmap", None, parse_object_ref, "report held values to this ConfigMap (NS/NAME, SPEC §4)"),
    Option("--report-interval", "5s", _positive_duration, "how often held values are reported to --report-configmap"),
    Option("--max-bytes", "256MiB", _positive_size, "global bound on queued and held data"),
    Option("--max-hold", "5m", _positive_duration, "longest a rate-limited, failing or held project's data is kept"),
    Option("--batch-max-bytes", "1MiB", _positive_size, "largest upstream request body, before compression"),
    Option("--batch-max-items", "8192", _int_between(1, 1_000_000), "most items in one upstream request"),
    Option("--batch-timeout", "200ms", _positive_duration, "how long a batch waits to fill up"),
    # Exporting to Sentry.
    Option("--export-timeout", "30s", _positive_duration, "timeout of one upstream request"),
    Option("--connect-timeout", "5s", _positive_duration, "connect timeout of upstream requests"),
    Option("--retry-initial", "500ms", _positive_duration, "first back-off after an upstream failure"),
    Option("--retry-max", "30s", _positive_duration, "longest back-off after upstream failures"),
    Option("--default-rate-limit", "60s", _positive_duration, "rate limit assumed for a 429 that names none"),
    Option("--gzip-level", "1", _int_between(0, 3), "gzip level of upstream bodies (ISA-L levels 0-3)"),
    # Process.
    Option("--shutdown-timeout", "20s", _positive_duration, "how long shutdown may spend flushing queued data"),
    Option("--log-format", "text", _one_of("text", "json"), "log format: text or json (one object per line)"),
    Option("--log-level", "info", _log_level, "log level: debug, info, warning, error"),
)
_BY_FIELD = {option.field: option for option in OPTIONS}
_METAVARS: dict[Callable[[str], Any], str] = {
    Path: "PATH",
    parse_address: "HOST:PORT",
    parse_object_ref: "NS/NAME",
    _positive_duration: "DURATION",
    _positive_size: "SIZE",
}


def _default(field_name: str) -> Any:
    return _BY_FIELD[field_name].default_value()


@dataclass(frozen=True, slots=True)
class ForwarderSettings:
    """Validated settings; durations in seconds, sizes in bytes. Defaults are those of the flags."""

    routes: Path = _default("routes")  # noqa: RUF009 (immutable value)
    routes_configmap: ObjectRef | None = None
    routes_poll_interval: float = _default("routes_poll_interval")
    otlp_http: Address = _default("otlp_http")  # noqa: RUF009 (immutable value)
    otlp_grpc: Address = _default("otlp_grpc")  # noqa: RUF009 (immutable value)
    admin: Address = _default("admin")  # noqa: RUF009 (immutable value)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    auth_token_file: Path | None = None
    max_request_bytes: int = _default("max_request_bytes")
    read_timeout: float = _default("read_timeout")
    retry_after: float = _default("retry_after")
    queue_dir: Path | None = None
    report_configmap: ObjectRef | None = None
    report_interval: float = _default("report_interval")
    max_bytes: int = _default("max_bytes")
    max_hold: float = _default("max_hold")
    batch_max_bytes: int = _default("batch_max_bytes")
    batch_max_items: int = _default("batch_max_items")
    batch_timeout: float = _default("batch_timeout")
    export_timeout: float = _default("export_timeout")
    connect_timeout: float = _default("connect_timeout")
    retry_initial: float = _default("retry_initial")
    retry_max: float = _default("retry_max")
    default_rate_limit: float = _default("default_rate_limit")
    gzip_level: int = _default("gzip_level")
    shutdown_timeout: float = _default("shutdown_timeout")
    log_format: str = _default("log_format")
    log_level: str = _default("log_level")

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key must be given together")
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError("--client-ca needs --tls-cert and --tls-key")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ForwarderSettings:
        """Convert the raw flag strings; raise ConfigError naming the first bad flag."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = getattr(args, option.field, None)
            if raw is None or raw == "":
                continue
            try:
                values[option.field] = option.convert(str(raw))
            except ValueError as exc:
                raise ConfigError(f"{option.flag}: {exc}") from None
        return cls(**values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare every option on `parser` (values stay strings until `ForwarderSettings.from_args`)."""
    for option in OPTIONS:
        add_option(parser, option.flag, default=option.default, help=option.help, metavar=option.metavar)

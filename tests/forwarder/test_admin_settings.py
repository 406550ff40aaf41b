"""Flags, environment variables, bad values (exit code 2), and the log formats with secret redaction."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sentryroute_forwarder.config import Address, ConfigError, ForwarderSettings, ObjectRef, add_arguments
from sentryroute_forwarder.export.settings import ExportSettings
from sentryroute_forwarder.logs import JsonFormatter, RedactingFilter
from sentryroute_forwarder.options import SettingsGroup, Switch, option
from sentryroute_forwarder.queue.settings import PipelineSettings, QueueSettings
from sentryroute_forwarder.receive.settings import ReceiverSettings

from sentryroute.options import env_name


def parse(argv: list[str]) -> ForwarderSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return ForwarderSettings.from_args(parser.parse_args(argv))


def test_every_setting_is_a_flag_with_its_variable_and_the_defaults_agree():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {flag: action for action in parser._actions for flag in action.option_strings if flag != "-h"}
    fields = set(ForwarderSettings.model_fields)
    assert {flag.removeprefix("--").replace("-", "_") for flag in flags if flag != "--help"} == fields
    for flag, action in flags.items():
        if flag != "--help":
            assert f"[env {env_name(flag)}]" in (action.help or "")
    assert parse([]) == ForwarderSettings()


@pytest.mark.parametrize("group", [QueueSettings, ExportSettings, PipelineSettings, ReceiverSettings])
def test_a_group_built_alone_has_the_forwarder_defaults(group):
    """The queue, export and receiver code may be built from their own group (tests do): same defaults."""
    forwarder = ForwarderSettings()
    alone = group()
    assert {name: getattr(alone, name) for name in group.model_fields} == {
        name: getattr(forwarder, name) for name in group.model_fields
    }


def test_each_group_has_its_own_help_section():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sections = {group.title: [a.option_strings[0] for a in group._group_actions] for group in parser._action_groups}
    assert "--max-hold" in sections["queues and holding"]
    assert "--gzip-level" in sections["exporting to Sentry"]
    assert "--otlp-grpc" in sections["receivers"]


def test_values_given_in_code_are_checked_like_flags():
    with pytest.raises(ValueError, match="greater than 0"):
        ForwarderSettings(max_hold=-1)
    with pytest.raises(ValueError, match="must be given together"):
        ForwarderSettings(tls_key=Path("/x.key"))
    with pytest.raises(ValueError, match="extra"):
        ForwarderSettings(max_hodl=1)  # type: ignore[call-arg]
    assert ForwarderSettings(max_hold="90s", max_bytes="1KiB").max_hold == 90.0  # type: ignore[arg-type]


class _WithSwitch(SettingsGroup):
    title = "switches"
    fsync: Switch = option(False, "flush every write")


def test_a_switch_is_a_flag_without_value_and_reads_its_variable(monkeypatch):
    def parse_switch(argv: list[str]) -> bool:
        parser = argparse.ArgumentParser()
        _WithSwitch.add_arguments(parser)
        return _WithSwitch.from_args(parser.parse_args(argv)).fsync

    assert parse_switch([]) is False
    assert parse_switch(["--fsync"]) is True
    monkeypatch.setenv("SENTRYROUTE_FSYNC", "true")
    assert parse_switch([]) is True


def test_defaults_follow_the_spec():
    settings = ForwarderSettings()
    assert settings.routes == Path("/etc/sentryroute/routes.json")
    assert (settings.otlp_http, settings.otlp_grpc, settings.admin) == (
        Address("0.0.0.0", 4318),
        Address("0.0.0.0", 4317),
        Address("0.0.0.0", 8888),
    )
    assert (settings.max_bytes, settings.max_hold) == (256 * 2**20, 300.0)
    assert (settings.batch_max_bytes, settings.batch_max_items, settings.batch_timeout) == (2**20, 8192, 0.2)
    assert (settings.export_timeout, settings.connect_timeout, settings.shutdown_timeout) == (30.0, 5.0, 20.0)
    assert (settings.retry_initial, settings.retry_max, settings.default_rate_limit) == (0.5, 30.0, 60.0)
    assert (settings.gzip_level, settings.max_request_bytes) == (1, 16 * 2**20)


def test_flags_and_environment(monkeypatch):
    monkeypatch.setenv("SENTRYROUTE_MAX_HOLD", "90s")
    monkeypatch.setenv("SENTRYROUTE_ROUTES_CONFIGMAP", "sentryroute/sentryroute-routes")
    settings = parse(["--otlp-http", "[::1]:0", "--admin", ":9999", "--max-bytes", "10MB", "--log-format", "JSON"])
    assert settings.max_hold == 90.0
    assert settings.routes_configmap == ObjectRef("sentryroute", "sentryroute-routes")
    assert settings.otlp_http == Address("::1", 0)
    assert settings.admin == Address("0.0.0.0", 9999)
    assert (settings.max_bytes, settings.log_format) == (10_000_000, "json")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-bytes", "lots"], "--max-bytes: invalid size"),
        (["--max-hold", "0s"], "--max-hold: duration '0s' must be greater than zero"),
        (["--otlp-http", "localhost"], "--otlp-http: invalid address"),
        (["--otlp-grpc", "1.2.3.4:70000"], "--otlp-grpc: invalid address"),
        (["--routes-configmap", "no-slash"], "--routes-configmap: invalid object reference"),
        (["--gzip-level", "9"], "--gzip-level: '9' is not a whole number from 0 to 3"),
        (["--log-level", "loud"], "--log-level: 'loud' is not one of"),
        (["--tls-cert", "/x.crt"], "--tls-cert and --tls-key must be given together"),
    ],
)
def test_bad_values_name_the_flag(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse(argv)


def test_bad_value_exits_with_code_2_and_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "sentryroute", "forwarder", "--batch-timeout", "soon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sentryroute forwarder: error: --batch-timeout: invalid duration 'soon': use forms like 250ms, 30s, 5m, 24h"
    ]


def make_record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sentryroute_forwarder.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_extra_fields_and_secrets_are_redacted():
    record = make_record(
        "export to %s failed: %s",
        "org/orders",
        "x-sentry-auth: sentry sentry_key=abcdef0123, Bearer tok3n",
        project="org/orders",
        header="Authorization: Bearer extra-tok3n",
    )
    assert RedactingFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning"
    assert entry["logger"] == "sentryroute_forwarder.test"
    assert entry["project"] == "org/orders"
    assert "abcdef0123" not in entry["message"] and "tok3n" not in entry["message"]
    assert "sentry_key=[redacted]" in entry["message"]
    assert entry["header"] == "Authorization: Bearer [redacted]"  # extra fields too
    assert entry["time"].endswith("+00:00")


def test_exception_text_is_redacted():
    try:
        raise RuntimeError("upstream said: Authorization: Bearer zzz-secret")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "zzz-secret" not in text and "Bearer [redacted]" in text


def test_queue_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = parse(["--queue-dir", str(tmp_path), "--max-disk-bytes", "2GiB", "--queue-fsync"])
    assert (settings.queue_dir, settings.max_disk_bytes, settings.queue_fsync) == (tmp_path, 2 << 30, True)
    assert settings.bound == 2 << 30  # with a queue directory the disk bound is the global one
    assert ForwarderSettings().bound == ForwarderSettings().max_bytes == 256 << 20
    with pytest.raises(ConfigError, match="--queue-fsync needs --queue-dir"):
        parse(["--queue-fsync"])
    monkeypatch.setenv("SENTRYROUTE_QUEUE_FSYNC", "true")
    monkeypatch.setenv("SENTRYROUTE_QUEUE_DIR", str(tmp_path))
    assert parse([]).queue_fsync is True

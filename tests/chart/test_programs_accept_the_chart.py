"""The programs accept exactly what the chart gives them: every SENTRYROUTE_* variable names a real option,
its value parses, the connections file loads, and HA peers get distinct kopf priorities."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import pytest

from sentryroute.options import env_name
from tests.chart.rendering import CI_VALUES, NAMESPACE, VALUE_SETS, Manifest, container_env, one, render, workload

forwarder_config = pytest.importorskip("sentryroute_forwarder.config", reason="the forwarder is not written yet")
operator_settings = pytest.importorskip("sentryroute_operator.settings", reason="the operator is not written yet")
operator_connections = pytest.importorskip("sentryroute_operator.connections", reason="the operator is not written yet")


def parse(command: str, manifest: Manifest, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """Parse the container's args the way `sentryroute <command>` does, with its environment in place."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    module = importlib.import_module(f"sentryroute_{command}.main")
    parser = argparse.ArgumentParser(prog=f"sentryroute {command}")
    module.add_arguments(parser)
    known = {env_name(flag) for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    unknown = sorted(name for name in env if name.startswith("SENTRYROUTE_") and name not in known)
    assert not unknown, f"{command} has no option for {unknown}"
    args: list[str] = manifest["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == command
    return parser.parse_args(args[1:])


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_forwarder_accepts_its_environment(values_file: Path | None, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = workload(render(values_file), "forwarder")
    args = parse("forwarder", manifest, container_env(manifest, pod_name="sr-sentryroute-forwarder-0"), monkeypatch)
    settings: Any = forwarder_config.ForwarderSettings.from_args(args)
    assert settings.shutdown_timeout < manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert (settings.queue_dir is not None) == (manifest["kind"] == "StatefulSet")


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_operator_accepts_its_environment(values_file: Path | None, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = workload(render(values_file), "operator")
    replicas = manifest["spec"]["replicas"]
    priorities = set()
    for ordinal in range(replicas):
        env = container_env(manifest, pod_name=f"{manifest['metadata']['name']}-{ordinal}")
        args = parse("operator", manifest, env, monkeypatch)
        settings: Any = operator_settings.settings_from_args(args, env=env)
        assert settings.namespace == NAMESPACE
        assert str(settings.routes_configmap) == f"{NAMESPACE}/sentryroute-routes"
        assert str(settings.report_configmap) == f"{NAMESPACE}/sentryroute-requests"
        priorities.add(settings.priority)
    assert len(priorities) == replicas, "two operator peers share a kopf priority"


@pytest.mark.parametrize("values_file", [pytest.param(f, id=f.stem) for f in CI_VALUES])
def test_operator_loads_the_rendered_connections(values_file: Path, tmp_path: Path) -> None:
    manifests = render(values_file)
    path = tmp_path / "connections.yaml"
    path.write_text(one(manifests, "ConfigMap", "-connections")["data"]["connections.yaml"])
    connections = operator_connections.load_connections(str(path), {})
    secrets = {m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"}
    for connection in connections.values():
        assert connection.token_secret is not None and connection.token_file is None
        if connection.token_secret in secrets:  # the chart's Secret holds exactly the key the operator reads
            assert connection.token_secret_key in one(manifests, "Secret", connection.token_secret)["data"]


#: `forwarder.limits.<value>` → the forwarder setting it becomes (issue 10's receiver limits).
LIMITS = {
    "maxRequestBytes": "max_request_bytes",
    "maxJsonBytes": "max_json_bytes",
    "readTimeout": "read_timeout",
    "maxConnections": "max_connections",
    "maxConcurrentRequests": "max_concurrent_requests",
    "grpcMaxConcurrentRequests": "grpc_max_concurrent_requests",
    "maxConnectionAge": "max_connection_age",
    "decodeWorkers": "decode_workers",
}


def forwarder_settings(manifests: tuple[Manifest, ...], monkeypatch: pytest.MonkeyPatch) -> Any:
    manifest = workload(manifests, "forwarder")
    args = parse("forwarder", manifest, container_env(manifest, pod_name="sr-sentryroute-forwarder-0"), monkeypatch)
    return forwarder_config.ForwarderSettings.from_args(args)


def test_receiver_limits_default_to_the_forwarders_own(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = forwarder_settings(render(), monkeypatch)
    own = forwarder_config.ForwarderSettings.model_validate({})
    assert {field: getattr(settings, field) for field in LIMITS.values()} == {
        field: getattr(own, field) for field in LIMITS.values()
    }


def test_receiver_limits_reach_the_forwarder(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "maxRequestBytes": "8MiB",
        "maxJsonBytes": "1MiB",
        "readTimeout": "45s",
        "maxConnections": "20000",
        "maxConcurrentRequests": "512",
        "grpcMaxConcurrentRequests": "256",
        "maxConnectionAge": "2m",
        "decodeWorkers": "4",
    }
    assert values.keys() == LIMITS.keys()
    settings = forwarder_settings(
        render(overrides=tuple(f"forwarder.limits.{k}={v}" for k, v in values.items())), monkeypatch
    )
    assert {field: getattr(settings, field) for field in LIMITS.values()} == {
        "max_request_bytes": 8 * 1024 * 1024,
        "max_json_bytes": 1024 * 1024,
        "read_timeout": 45.0,
        "max_connections": 20000,
        "max_concurrent_requests": 512,
        "grpc_max_concurrent_requests": 256,
        "max_connection_age": 120.0,
        "decode_workers": 4,
    }

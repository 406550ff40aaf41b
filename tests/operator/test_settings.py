"""Flags and environment → OperatorSettings (SPEC §1 naming, §5 defaults)."""

from __future__ import annotations

import argparse

import pytest
from sentryroute_operator.main import add_arguments
from sentryroute_operator.settings import ObjectRef, priority_from_hostname, settings_from_args


def parse(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_follow_the_own_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse([], {}, monkeypatch)
    settings = settings_from_args(args, env={"POD_NAMESPACE": "observability"})
    assert settings.routes_configmap == ObjectRef("observability", "sentryroute-routes")
    assert settings.report_configmap == ObjectRef("observability", "sentryroute-requests")
    assert (settings.new_project_warmup, settings.reverify_interval) == (10.0, 300.0)
    assert settings.default_attribute == "service.name" and settings.auto_create is False
    assert settings.auto_create_rate == 30 and settings.standalone and settings.routes_size_limit == 1024 * 1024


def test_environment_variables_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SENTRYROUTE_ROUTES_CONFIGMAP": "other/routes",
        "SENTRYROUTE_NEW_PROJECT_WARMUP": "250ms",
        "SENTRYROUTE_AUTO_CREATE": "true",
        "SENTRYROUTE_AUTO_CREATE_DENY": "internal-*, test-*",
        "SENTRYROUTE_PEERING": "sentryroute",
    }
    args = parse(["--priority", "7", "--namespace", "ops"], env, monkeypatch)
    settings = settings_from_args(args, env={})
    assert settings.routes_configmap == ObjectRef("other", "routes") and settings.namespace == "ops"
    assert settings.new_project_warmup == 0.25 and settings.auto_create
    assert settings.auto_create_deny == ("internal-*", "test-*")
    assert settings.peering == "sentryroute" and settings.priority == 7 and not settings.standalone


def test_priority_from_statefulset_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    assert priority_from_hostname("sentryroute-operator-0") == 100
    assert priority_from_hostname("sentryroute-operator-2") == 98
    with pytest.raises(ValueError, match="ordinal"):
        priority_from_hostname("sentryroute-operator")
    args = parse(["--priority-from-hostname"], {}, monkeypatch)
    assert settings_from_args(args, env={"HOSTNAME": "op-1"}).priority == 99


@pytest.mark.parametrize("bad", ["/name", "ns/", "a/b/c"])
def test_object_ref_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        ObjectRef.parse(bad, default_namespace="x")

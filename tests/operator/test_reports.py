"""The report channel (SPEC §4) with `--auto-create`: identity routes, creation, refusals, cleanup."""

from __future__ import annotations

import json
from typing import Any

from sentryroute.routes import report_key, slug

from .conftest import OPERATOR_NS, ORG, TEAM, Cluster, Sentry, eventually, routed


def report(cluster: Cluster, value: str, *, reason: str = "unrouted", key: str | None = None) -> None:
    """What a forwarder does: JSON-merge-patch one entry into the report ConfigMap."""
    entry = {"attribute": "service.name", "value": value, "reason": reason, "lastSeen": "2026-11-25T00:00:00Z"}
    data = {key or report_key("service.name", value): json.dumps(entry)}
    cluster.core.patch_namespaced_config_map("sentryroute-requests", OPERATOR_NS, {"data": data})


def test_reported_values_identity_auto_create_refusals_and_cleanup(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "legacy-api")
    start_operator(auto_create=True, auto_create_team=TEAM, auto_create_deny=("internal-*",), auto_create_rate=2)
    eventually(lambda: cluster.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-requests"), what="pre-created")
    eventually(lambda: cluster.table(), what="the first table (no routes yet)")
    assert cluster.current_table().unrouted == "hold" and cluster.current_table().autoCreate is not None

    for value in ("legacy-api", "New Thing", "second", "third", "unknown_service:java", "internal-tool"):
        report(cluster, value)
    report(cluster, "forged", key="0123456789abcdef")  # key is not the hash of its content: ignored, removed

    expected_routes = {
        ("legacy-api", None): f"{ORG}/legacy-api",  # identity: the raw value is an existing slug
        ("New Thing", None): f"{ORG}/{slug('New Thing')}",
        ("second", None): f"{ORG}/second",
    }
    eventually(lambda: routed(cluster.table()) == expected_routes, timeout=30, what="reported values routed")
    refused = {(r.value, r.reason) for r in cluster.current_table().refused}
    assert refused == {("third", "rate_limited"), ("unknown_service:java", "placeholder"), ("internal-tool", "denied")}
    assert sentry.project(slug("New Thing")).teams == [TEAM]
    assert sentry.project("third") is None and sentry.project("internal-tool") is None

    def remaining() -> dict[str, str]:
        cm = cluster.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-requests") or {}
        return dict(cm.get("data") or {})

    eventually(lambda: remaining() == {}, what="handled entries removed")


def test_reports_of_peer_mode_forwarders_are_never_provisioned_operator_wide(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    """SPEC §4: a value reported from namespace X may not be adopted or created beyond X; until scoped
    auto-create exists such reports are removed unprovisioned (no identity route into another's project)."""
    sentry.emu.state.add_project(ORG, TEAM, "bank-ledger")  # another namespace's project
    start_operator(auto_create=True, auto_create_team=TEAM)
    eventually(lambda: cluster.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-requests"), what="pre-created")
    eventually(lambda: cluster.table(), what="the first table")
    for value in ("bank-ledger", "brand-new"):
        entry = {"attribute": "service.name", "value": value, "reason": "unrouted", "lastSeen": "2026-11-25T00:00:00Z"}
        entry |= {"namespace": "shop", "namespaceFrom": "peer"}
        data = {report_key("service.name", value, "shop"): json.dumps(entry)}
        cluster.core.patch_namespaced_config_map("sentryroute-requests", OPERATOR_NS, {"data": data})

    def report_data() -> dict[str, str]:
        configmap = cluster.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-requests") or {}
        return dict(configmap.get("data") or {})

    eventually(lambda: report_data() == {}, timeout=30, what="the peer reports removed as handled")
    assert routed(cluster.current_table()) == {}
    assert sentry.project("brand-new") is None and sentry.project(slug("brand-new")) is None

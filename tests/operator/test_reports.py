"""The report channel (SPEC §4) with `--auto-create`: identity routes, creation, refusals, cleanup."""

from __future__ import annotations

import json
from typing import Any

from sentryroute.routes import report_key, slug

from .conftest import OPERATOR_NS, ORG, TEAM, Cluster, Sentry, TableRecorder, eventually, routed
from .test_sentry_faults import hard_delete


def report(
    cluster: Cluster,
    value: str,
    *,
    reason: str = "unrouted",
    key: str | None = None,
    peer: bool = False,
    namespace: str | None = None,
) -> None:
    """What a forwarder does: JSON-merge-patch one entry into the report ConfigMap (`peer`: a forwarder in
    `--namespace-from peer` mode, naming the namespace it determined, none for an unknown peer)."""
    entry = {"attribute": "service.name", "value": value, "reason": reason, "lastSeen": "2026-11-25T00:00:00Z"}
    if peer:
        entry |= {"namespaceFrom": "peer"} | ({"namespace": namespace} if namespace else {})
    data = {key or report_key("service.name", value, namespace): json.dumps(entry)}
    cluster.core.patch_namespaced_config_map("sentryroute-requests", OPERATOR_NS, {"data": data})


def report_data(cluster: Cluster) -> dict[str, str]:
    configmap = cluster.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-requests") or {}
    return dict(configmap.get("data") or {})


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
    expected_refused = {("third", "rate_limited"), ("unknown_service:java", "placeholder"), ("internal-tool", "denied")}
    # One wait for both: reports patched one by one may be handled in different cycles, so a table can route the
    # first three values before the later ones are refused.
    eventually(
        lambda: (
            routed(table := cluster.table()) == expected_routes
            and {(r.value, r.reason) for r in table.refused} == expected_refused
        ),
        timeout=30,
        what="reported values routed and refused",
    )
    assert sentry.project(slug("New Thing")).teams == [TEAM]
    assert sentry.project("third") is None and sentry.project("internal-tool") is None

    eventually(lambda: report_data(cluster) == {}, what="handled entries removed")


def test_peer_reports_are_provisioned_for_their_namespace_only_and_survive_a_restart(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    """SPEC §4: a value reported from namespace X is created or adopted only for X, and never routes X's data
    into a project no route of X maps and sentryroute did not create for X — also after an operator restart."""
    for project in ("bank-ledger", "shop-orders", "shop-squat"):
        sentry.emu.state.add_project(ORG, TEAM, project)
    cluster.route("bank", "bank", {"mapping": {"ledger": "bank-ledger"}})
    cluster.route("shop", "shop", {"mapping": {"orders": "shop-orders"}})
    operator = start_operator(auto_create=True, auto_create_team=TEAM, reverify_interval=300.0)
    eventually(lambda: len(routed(cluster.table())) == 2, what="the two mapped routes")

    report(cluster, "bank-ledger", peer=True, namespace="shop")  # bank's project: never shop's
    report(cluster, "shop-orders", peer=True, namespace="shop")  # a project shop's route maps: identity route
    report(cluster, "brand-new", peer=True, namespace="shop")
    report(cluster, "brand-new", peer=True, namespace="bank")  # the same value from bank: bank's own project
    report(cluster, "squat", peer=True, namespace="shop")  # shop-squat exists, but is not shop's: refused
    report(cluster, "orphan", peer=True)  # an unknown peer has no namespace: never provisioned

    expected = {
        ("ledger", "bank"): f"{ORG}/bank-ledger",
        ("orders", "shop"): f"{ORG}/shop-orders",
        ("bank-ledger", "shop"): f"{ORG}/shop-bank-ledger",
        ("shop-orders", "shop"): f"{ORG}/shop-orders",
        ("brand-new", "shop"): f"{ORG}/shop-brand-new",
        ("brand-new", "bank"): f"{ORG}/bank-brand-new",
    }
    eventually(lambda: routed(cluster.table()) == expected, timeout=30, what="reported values routed per namespace")
    assert {(r.value, r.namespace, r.reason) for r in cluster.current_table().refused} == {("squat", "shop", "taken")}
    assert sentry.project("orphan") is None and sentry.project(slug("orphan")) is None
    eventually(lambda: report_data(cluster) == {}, what="every report handled and removed")

    # A restart: the new operator knows which projects were created for which namespace, and keeps routing
    # them in every table it writes (no gap while it re-checks them).
    operator.stop()
    recorder = TableRecorder(cluster)
    try:
        eventually(lambda: len(recorder.tables) > 0, what="the recorder has the table written before the restart")
        start_operator(auto_create=True, auto_create_team=TEAM, reverify_interval=300.0)
        hard_delete(sentry, "shop-brand-new")
        report(cluster, "brand-new", reason="project_id", peer=True, namespace="shop")
        eventually(lambda: sentry.project("shop-brand-new") is not None, what="re-created: it was made for shop")
        before_orders_gone = len(recorder.tables)
        hard_delete(sentry, "shop-orders")  # adopted, not created for shop: never re-created
        report(cluster, "shop-orders", reason="project_id", peer=True, namespace="shop")
        eventually(lambda: report_data(cluster) == {}, what="the heal reports handled")
        eventually(
            lambda: (
                routed(cluster.table())[("brand-new", "shop")] == f"{ORG}/shop-brand-new"
                and cluster.current_table().projects[f"{ORG}/shop-brand-new"].id == sentry.project("shop-brand-new").id
            ),
            what="the table routes the re-created project",
        )
    finally:
        recorder.stop()
    assert sentry.project("shop-orders") is None
    # Routed, or held while the re-created project warms up: never unrouted.
    # (Once shop-orders is gone, its identity route may leave the table: that is the point of not re-creating it.)
    covered = [set(routed(t)) | {(p.value, p.namespace) for p in t.pending} for t in recorder.tables]
    assert covered[:before_orders_gone] and all(set(expected) <= c for c in covered[:before_orders_gone])
    assert all(set(expected) - {("shop-orders", "shop")} <= c for c in covered)

"""Healing on a forwarder's report (SPEC §4): a 403 ProjectId or 401 for a routed value is re-verified at once.

The periodic re-verification is pushed out of the way (5 minutes) so that only the report can be what heals.
"""

from __future__ import annotations

from typing import Any

from .conftest import OPERATOR_NS, ORG, TEAM, Cluster, Sentry, eventually, routed
from .test_reports import report
from .test_sentry_faults import hard_delete

SLOW_REVERIFY = 300.0


def project_of(cluster: Cluster, value: str, namespace: str | None) -> Any:
    table = cluster.current_table()
    return table.projects[routed(table)[(value, namespace)]]


def remembered(cluster: Cluster) -> str:
    """The reported values the operator keeps across restarts (an annotation of the routes ConfigMap)."""
    cm = cluster.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-routes") or {}
    return str(((cm.get("metadata") or {}).get("annotations") or {}).get("sentryroute.dev/reported-values", ""))


def test_reports_heal_deleted_created_projects_rotated_keys_and_flag_gone_adopted_ones(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "orders")
    billing = sentry.emu.state.add_project(ORG, TEAM, "billing")
    cluster.pod("shop", "p", labels={"service.name": "checkout-v2"})
    spec = {
        "mapping": {"orders-svc": "orders", "billing-svc": "billing"},
        "autoProvision": {"enabled": True, "team": TEAM},
    }
    cluster.route("shop", "shop", spec)
    start_operator(reverify_interval=SLOW_REVERIFY)
    eventually(lambda: len(routed(cluster.table())) == 3, what="three routes")
    eventually(lambda: cluster.ready("shop", "shop").get("status") == "True", what="Ready")

    # A project this route created is deleted: re-created with a new id and key, the table follows.
    old = sentry.project("checkout-v2")
    hard_delete(sentry, "checkout-v2")
    report(cluster, "checkout-v2", reason="project_id")
    new = eventually(lambda: (p := sentry.project("checkout-v2")) is not None and p, what="re-created")
    assert new.id != old.id
    eventually(lambda: project_of(cluster, "checkout-v2", "shop").id == new.id, what="the table routes the new project")
    assert project_of(cluster, "checkout-v2", "shop").publicKey == sentry.endpoint_of("checkout-v2")["publicKey"]
    assert cluster.entries("shop", "shop")["checkout-v2"]["created"] is True

    # A rotated key (the old one revoked): the table gets the current key.
    old_key = sentry.endpoint_of("billing")["publicKey"]
    new_key = sentry.emu.state.add_key(ORG, billing.id, name="rotated").public
    sentry.emu.state.set_key_active(old_key, False)
    report(cluster, "billing-svc", reason="unauthorized")
    eventually(lambda: project_of(cluster, "billing-svc", "shop").publicKey == new_key, what="the rotated key")

    # An adopted project is deleted: never re-created; Failed with the reason, an Event, and still routed.
    orders_id = sentry.project("orders").id
    hard_delete(sentry, "orders")
    report(cluster, "orders-svc", reason="project_id")
    entry = eventually(
        lambda: (e := cluster.entries("shop", "shop")["orders-svc"])["state"] == "Failed" and e, what="Failed"
    )
    assert "no longer exists" in entry["message"] and entry["id"] == orders_id
    assert sentry.project("orders") is None
    assert project_of(cluster, "orders-svc", "shop").id == orders_id
    eventually(
        lambda: any("orders" in e.get("message", "") and e["type"] == "Warning" for e in cluster.events()),
        what="a Warning Event",
    )
    assert cluster.ready("shop", "shop")["status"] == "False"


def test_reports_heal_auto_created_projects(cluster: Cluster, sentry: Sentry, start_operator: Any) -> None:
    """Also across a restart: which projects auto-create made is kept in the routes ConfigMap (SPEC §4)."""
    operator = start_operator(auto_create=True, auto_create_team=TEAM, reverify_interval=SLOW_REVERIFY)
    eventually(lambda: cluster.table(), what="the first table")
    report(cluster, "checkout-v2")
    first = eventually(lambda: sentry.project("checkout-v2"), what="auto-created")
    eventually(lambda: ("checkout-v2", None) in routed(cluster.table()), what="routed")
    eventually(lambda: "checkout-v2" in remembered(cluster), what="remembered as created")
    operator.stop()
    start_operator(auto_create=True, auto_create_team=TEAM, reverify_interval=SLOW_REVERIFY)

    hard_delete(sentry, "checkout-v2")
    report(cluster, "checkout-v2", reason="project_id")
    second = eventually(lambda: (p := sentry.project("checkout-v2")) is not None and p, what="re-created")
    assert second.id != first.id
    eventually(lambda: project_of(cluster, "checkout-v2", None).id == second.id, what="the table routes it")

"""The table follows the cluster: pods come and go (staleAfter), routes conflict, the operator restarts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .conftest import ORG, TEAM, Cluster, Sentry, TableRecorder, eventually, routed


def labelled(cluster: Cluster, name: str, service: str, **labels: str) -> None:
    cluster.pod("shop", name, labels={"service.name": service, **labels})


def test_pods_added_removed_relabelled_follow_with_stale_after(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    labelled(cluster, "a", "alpha", tier="web")
    labelled(cluster, "b", "beta", tier="web")
    labelled(cluster, "d", "database", tier="db")  # excluded by the podSelector
    spec = {
        "autoProvision": {
            "enabled": True,
            "team": TEAM,
            "staleAfter": "2s",
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]},
        }
    }
    cluster.route("shop", "shop", spec)
    start_operator()
    expect = lambda *values: lambda: set(routed(cluster.table())) == {(v, "shop") for v in values}  # noqa: E731
    eventually(expect("alpha", "beta"), what="alpha and beta routed")
    assert sentry.project("database") is None

    labelled(cluster, "c", "gamma", tier="web")
    eventually(expect("alpha", "beta", "gamma"), what="gamma added")

    cluster.delete_pod("shop", "b")
    gone_at = time.monotonic()
    # The operator noticed (lastSeen is written with the table that still routes beta): staleAfter has not passed.
    eventually(lambda: cluster.entries("shop", "shop")["beta"].get("lastSeen"), what="beta's lastSeen")
    assert ("beta", "shop") in routed(cluster.table())
    eventually(expect("alpha", "gamma"), what="beta gone after staleAfter")
    assert time.monotonic() - gone_at >= 1.9

    cluster.patch_pod_labels("shop", "a", {"service.name": "alpha-two"})
    eventually(expect("alpha", "alpha-two", "gamma"), what="relabelled value added")
    eventually(expect("alpha-two", "gamma"), what="old value stale")
    assert sentry.project("beta") is not None  # projects are never deleted by staleness


def test_two_routes_claiming_a_value_both_render_and_the_later_one_conflicts(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "checkout-shop")
    sentry.emu.state.add_project(ORG, TEAM, "checkout-other")
    cluster.route("shop", "first", {"mapping": {"checkout": "checkout-shop"}})
    time.sleep(1.1)  # creationTimestamp has a resolution of one second
    cluster.route("other", "second", {"mapping": {"checkout": "checkout-other"}})
    start_operator()
    eventually(
        lambda: (
            routed(cluster.table())
            == {("checkout", "shop"): f"{ORG}/checkout-shop", ("checkout", "other"): f"{ORG}/checkout-other"}
        ),
        what="both routes rendered",
    )
    assert [r.namespace for r in cluster.current_table().routes] == ["shop", "other"]
    eventually(lambda: cluster.entries("other", "second")["checkout"]["state"] == "Conflict", what="Conflict")
    entry = cluster.entries("other", "second")["checkout"]
    assert "k8s.namespace.name=other" in entry["message"] and "shop/first" in entry["message"]
    assert cluster.ready("other", "second")["reason"] == "Conflict"
    eventually(lambda: cluster.ready("shop", "first")["status"] == "True", what="the first route stays Ready")


def test_restart_never_writes_a_table_that_drops_routes(
    cluster: Cluster, sentry: Sentry, start_operator: Any, recorder: TableRecorder
) -> None:
    for slug in ("orders", "payments"):
        sentry.emu.state.add_project(ORG, TEAM, slug)
    for i, service in enumerate(["cart", "search", "login"]):
        labelled(cluster, f"p{i}", service)
    cluster.route(
        "shop",
        "shop",
        {
            "mapping": {"orders-svc": "orders", "payments-svc": "payments"},
            "autoProvision": {"enabled": True, "team": TEAM},
        },
    )
    first = start_operator()
    full = {("orders-svc", "shop"), ("payments-svc", "shop"), ("cart", "shop"), ("search", "shop"), ("login", "shop")}
    eventually(lambda: set(routed(cluster.table())) == full, what="the full table")
    first.stop()
    before_restart = len(recorder.tables)

    # The restarted operator meets a slow Sentry: key listings are rate-limited and the project listing fails once.
    sentry.emu.faults.api_rate_limit(r".*/keys/.*", count=4, reset_in=1.0)
    sentry.emu.faults.api_fail(r".*/organizations/acme/projects/.*", status=503, count=1)
    labelled(cluster, "p9", "basket")  # so the restarted operator has something new to write
    second = start_operator()
    eventually(lambda: set(routed(cluster.table())) == full | {("basket", "shop")}, timeout=60, what="basket added")
    after = recorder.tables[before_restart:]
    assert after, "the restarted operator wrote the new value"
    for table in after:
        assert full <= set(routed(table)), f"revision {table.revision} dropped routes"
    assert second.writes >= 1


def test_a_deleted_routes_configmap_comes_back(cluster: Cluster, sentry: Sentry, start_operator: Any) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "orders")
    cluster.route("shop", "shop", {"mapping": {"orders-svc": "orders"}})
    start_operator()
    eventually(lambda: routed(cluster.table()), what="the table")
    cluster.core.delete_namespaced_config_map("sentryroute-routes", "sentryroute-system")
    eventually(lambda: routed(cluster.table()) == {("orders-svc", "shop"): f"{ORG}/orders"}, what="re-created")


def test_stale_after_counts_from_the_last_pod_across_a_restart(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    labelled(cluster, "a", "alpha")
    labelled(cluster, "b", "beta")
    cluster.route("shop", "shop", {"autoProvision": {"enabled": True, "team": TEAM, "staleAfter": "1h"}})
    first = start_operator()
    eventually(lambda: set(routed(cluster.table())) == {("alpha", "shop"), ("beta", "shop")}, what="both routed")

    cluster.delete_pod("shop", "a")
    entry = eventually(lambda: (e := cluster.entries("shop", "shop")["alpha"]).get("lastSeen") and e, what="lastSeen")
    gone = datetime.fromisoformat(entry["lastSeen"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - gone).total_seconds()) < 60
    assert "lastSeen" not in cluster.entries("shop", "shop")["beta"]  # a Pod still reports it
    assert ("alpha", "shop") in routed(cluster.table())  # staleAfter (1h) has not passed
    first.stop()

    # While the operator is down, time passes: alpha's last Pod went away two hours ago.
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = cluster.status("shop", "shop")
    status["projects"] = [dict(e, lastSeen=two_hours_ago) if e["value"] == "alpha" else e for e in status["projects"]]
    cluster.custom.patch_namespaced_custom_object_status(
        "sentryroute.dev", "v1alpha1", "shop", "sentryroutes", "shop", {"status": status}
    )
    start_operator()
    # The restarted operator counts from the persisted time: alpha is stale now, not an hour from now. It writes
    # the table first and the route's status after it, so each is waited for on its own.
    eventually(lambda: set(routed(cluster.table())) == {("beta", "shop")}, what="alpha stale after the restart")
    eventually(lambda: set(cluster.entries("shop", "shop")) == {"beta"}, what="alpha gone from the status")

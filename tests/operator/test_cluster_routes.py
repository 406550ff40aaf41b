"""ClusterSentryRoutes (SPEC §2.1) with the real operator: cluster-wide entries, rendered after every namespace's
own SentryRoutes; any connection; a namespaceSelector is refused loudly until the operator renders it."""

from __future__ import annotations

from typing import Any

from sentryroute.routes import Route

from .conftest import ORG, TEAM, Cluster, Sentry, eventually


def test_a_cluster_route_is_cluster_wide_and_comes_after_namespace_routes(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    for slug in ("shop-orders", "platform-orders", "platform-ledger", "platform-catch-all"):
        sentry.emu.state.add_project(ORG, TEAM, slug)
    # The cluster route is created first: its age must not put it before a namespace's own route.
    cluster.cluster_route(
        "platform",
        {
            "mapping": {"orders": "platform-orders", "ledger": "platform-ledger"},
            "fallbackProject": "platform-catch-all",
        },
    )
    cluster.route("shop", "shop", {"mapping": {"orders": "shop-orders"}})
    start_operator()

    def routes() -> list[Route]:
        table = cluster.table()
        return list(table.routes) if table is not None else []

    expected = [
        Route(attribute="service.name", value="orders", namespace="shop", project=f"{ORG}/shop-orders"),
        Route(attribute="service.name", value="ledger", project=f"{ORG}/platform-ledger"),
        Route(attribute="service.name", value="orders", project=f"{ORG}/platform-orders"),
    ]
    eventually(lambda: routes() == expected, timeout=60, what="namespace route first, then cluster-wide ones")
    table = cluster.current_table()
    assert [(f.namespace, f.project) for f in table.fallbacks] == [(None, f"{ORG}/platform-catch-all")]
    eventually(lambda: cluster.cluster_route_ready("platform").get("status") == "True", what="cluster route Ready")
    eventually(lambda: cluster.ready("shop", "shop").get("status") == "True", what="namespace route Ready")


def test_a_namespace_selector_is_refused_not_widened(cluster: Cluster, sentry: Sentry, start_operator: Any) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "payments-ledger")
    cluster.cluster_route(
        "payments",
        {"namespaceSelector": {"matchLabels": {"team": "payments"}}, "mapping": {"ledger": "payments-ledger"}},
    )
    start_operator()
    eventually(lambda: cluster.cluster_route_ready("payments").get("status") == "False", what="refused")
    condition = cluster.cluster_route_ready("payments")
    assert condition["reason"] == "InvalidSpec" and "namespaceSelector" in condition["message"]
    table = cluster.current_table()
    assert not any(r.value == "ledger" for r in table.routes)

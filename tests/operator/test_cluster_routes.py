"""ClusterSentryRoutes (SPEC §2.1) with the real operator: cluster-wide entries, rendered after every namespace's
own SentryRoutes; any connection; a namespaceSelector renders exact entries for the namespaces it selects, and
follows namespaces as they are created, relabelled and deleted."""

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


def test_a_namespace_selector_renders_exact_entries_for_the_namespaces_it_selects(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    for slug in ("payments-ledger", "payments-catch-all", "shop-ledger"):
        sentry.emu.state.add_project(ORG, TEAM, slug)
    cluster.namespace("bank", {"team": "payments"})
    cluster.namespace("cards", {"team": "payments", "tier": "sandbox"})
    cluster.namespace("shop", {"team": "web"})
    cluster.route("shop", "shop", {"mapping": {"ledger": "shop-ledger"}})
    cluster.cluster_route(
        "payments",
        {
            "namespaceSelector": {
                "matchLabels": {"team": "payments"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["sandbox"]}],
            },
            "mapping": {"ledger": "payments-ledger"},
            "fallbackProject": "payments-catch-all",
        },
    )
    start_operator()
    ledger, catch_all = f"{ORG}/payments-ledger", f"{ORG}/payments-catch-all"

    def selected() -> tuple[list[tuple[str | None, str, bool]], list[tuple[str | None, str]]]:
        table = cluster.current_table()
        routes = [(r.namespace, r.project, bool(r.exact)) for r in table.routes if r.value == "ledger"]
        return routes, [(f.namespace, f.project) for f in table.fallbacks]

    only_bank = (
        [("shop", f"{ORG}/shop-ledger", False), ("bank", ledger, True)],
        [("bank", catch_all)],
    )
    eventually(lambda: selected() == only_bank, timeout=60, what="bank selected; cards excluded by NotIn")
    eventually(lambda: cluster.cluster_route_ready("payments").get("status") == "True", what="Ready")

    # Relabelled into the selection, a new namespace, and one that leaves: the table follows each change.
    cluster.label_namespace("cards", {"tier": None})
    cluster.namespace("loans", {"team": "payments"})
    cluster.label_namespace("bank", {"team": "retail"})
    moved = (
        [("shop", f"{ORG}/shop-ledger", False), ("cards", ledger, True), ("loans", ledger, True)],
        [("cards", catch_all), ("loans", catch_all)],
    )
    eventually(lambda: selected() == moved, timeout=30, what="cards and loans in, bank out")

    # The namespace's own SentryRoute wins over the platform route in its namespace (SPEC §2.1).
    cluster.label_namespace("shop", {"team": "payments"})
    with_shop = (
        [("shop", f"{ORG}/shop-ledger", False), ("cards", ledger, True), ("loans", ledger, True)],
        [("cards", catch_all), ("loans", catch_all), ("shop", catch_all)],
    )
    eventually(lambda: selected() == with_shop, timeout=30, what="shop selected, its own route first")

    cluster.delete_namespace("loans")
    eventually(lambda: ("loans", ledger, True) not in selected()[0], timeout=30, what="a deleted namespace leaves")
    assert not any(r.value == "ledger" and r.namespace is None for r in cluster.current_table().routes)


def test_a_malformed_namespace_selector_selects_nothing(cluster: Cluster, sentry: Sentry, start_operator: Any) -> None:
    """`In` without values passes the emulated API (it runs no CEL): the operator refuses it, never widens it."""
    sentry.emu.state.add_project(ORG, TEAM, "payments-ledger")
    cluster.namespace("bank", {"team": "payments"})
    cluster.cluster_route(
        "payments",
        {
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": []}]},
            "mapping": {"ledger": "payments-ledger"},
        },
    )
    start_operator()
    eventually(lambda: cluster.cluster_route_ready("payments").get("reason") == "InvalidSpec", what="refused")
    assert "namespaceSelector" in cluster.cluster_route_ready("payments")["message"]
    assert not any(r.value == "ledger" for r in cluster.current_table().routes)


def test_a_selector_that_selects_no_namespace_renders_nothing_and_is_ready(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    """Nothing to route is not a failure: the projects are provisioned, Ready is true, the table has no entry."""
    sentry.emu.state.add_project(ORG, TEAM, "payments-ledger")
    cluster.cluster_route(
        "payments", {"namespaceSelector": {"matchLabels": {"team": "nobody"}}, "mapping": {"ledger": "payments-ledger"}}
    )
    start_operator()
    eventually(lambda: cluster.cluster_route_ready("payments").get("status") == "True", what="Ready")
    assert not any(r.value == "ledger" for r in cluster.current_table().routes)

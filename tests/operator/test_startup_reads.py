"""What the operator reads at start: the routes ConfigMap (up to ~1 MB) once, for the previous table and the
reported values remembered in its annotation — not once for each, and not again for the first write."""

from __future__ import annotations

from typing import Any

from .conftest import OPERATOR_NS, ORG, TEAM, Cluster, Sentry, eventually, routed
from .test_reports import report, report_data

ROUTES_PATH = f"/api/v1/namespaces/{OPERATOR_NS}/configmaps/sentryroute-routes"


def gets_of_the_routes_configmap(cluster: Cluster) -> int:
    """How many GETs of the routes ConfigMap the emulated API has served (its recorded requests)."""
    requests = cluster.kube.call(lambda: list(cluster.kube.emulator))
    return sum(1 for request in requests if request.method == "GET" and request.url.path == ROUTES_PATH)


def test_a_restarted_operator_reads_the_routes_configmap_once_and_keeps_what_it_held(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "orders")
    cluster.route("shop", "shop", {"mapping": {"orders": "orders"}})
    first = start_operator(auto_create=True, auto_create_team=TEAM, reverify_interval=300.0)
    report(cluster, "brand-new", peer=True, namespace="shop")  # remembered in the ConfigMap's annotation
    expected = {("orders", "shop"): f"{ORG}/orders", ("brand-new", "shop"): f"{ORG}/shop-brand-new"}
    eventually(lambda: routed(cluster.table()) == expected, what="the mapped and the reported value routed")
    eventually(lambda: report_data(cluster) == {}, what="the report handled")
    first.stop()

    before = gets_of_the_routes_configmap(cluster)
    second = start_operator(auto_create=True, auto_create_team=TEAM, reverify_interval=300.0)
    eventually(lambda: second.app.engine.cycles >= 3, what="the restarted operator's first cycles done")
    assert gets_of_the_routes_configmap(cluster) - before == 1
    assert routed(cluster.table()) == expected  # the remembered reported value is still routed
    assert second.writes == 0  # the table it found is the one it renders: nothing to write

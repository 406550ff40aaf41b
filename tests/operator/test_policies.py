"""Who may do what: allowedNamespaces, deletionPolicy, fallbacks and identity routes, the size guard, HA peering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from .conftest import ORG, TEAM, Cluster, LogCapture, Sentry, eventually, routed


def test_allowed_namespaces(
    cluster: Cluster, sentry: Sentry, start_operator: Any, tmp_path: Path, logs: LogCapture
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "shop-api")
    sentry.emu.state.add_project(ORG, TEAM, "evil-api")
    connections = tmp_path / "c.yaml"
    connections.write_text(
        yaml.safe_dump(
            {
                "connections": [
                    {
                        "name": "default",
                        "url": sentry.emu.url,
                        "orgSlug": ORG,
                        "tokenSecret": "sentry-token",
                        "allowedNamespaces": ["shop", "team-*"],
                    }
                ]
            }
        )
    )
    cluster.route("shop", "ok", {"mapping": {"api": "shop-api"}})
    cluster.route("team-a", "ok", {"mapping": {"team-api": "shop-api"}})
    cluster.route("evil", "sneaky", {"mapping": {"evil": "evil-api"}})
    start_operator(connections_file=str(connections))
    eventually(lambda: set(routed(cluster.table())) == {("api", "shop"), ("team-api", "team-a")}, what="allowed")
    cond = eventually(lambda: cluster.ready("evil", "sneaky"), what="a condition on the refused route")
    assert (cond["status"], cond["reason"]) == ("False", "ConnectionNotAllowed")
    assert "evil" in cond["message"]
    assert not [line for line in logs.lines if "evil-api" in line and "aiohttp.access" in line]


def test_deletion_policy_delete_removes_only_created_projects(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "adopted")
    cluster.pod("doomed", "p", labels={"service.name": "made-by-doomed"})
    cluster.pod("kept", "p", labels={"service.name": "made-by-kept"})
    auto = {"enabled": True, "team": TEAM}
    cluster.route("doomed", "r", {"mapping": {"a": "adopted"}, "autoProvision": auto, "deletionPolicy": "Delete"})
    cluster.route("kept", "r", {"autoProvision": auto})  # deletionPolicy defaults to Retain
    start_operator()
    eventually(lambda: len(routed(cluster.table())) == 3, what="three routes")
    eventually(lambda: cluster.entries("doomed", "r")["made-by-doomed"]["created"] is True)
    eventually(lambda: cluster.entries("kept", "r")["made-by-kept"]["created"] is True)

    cluster.delete_route("doomed", "r")
    cluster.delete_route("kept", "r")
    eventually(lambda: cluster.route_object("doomed", "r") is None, what="finalizer released")
    eventually(lambda: cluster.route_object("kept", "r") is None, what="retained route gone")
    assert sentry.project("made-by-doomed") is None  # created by a Delete route: deleted
    assert sentry.project("adopted") is not None  # adopted: never deleted
    assert sentry.project("made-by-kept") is not None  # Retain
    eventually(lambda: routed(cluster.table()) == {}, what="routes removed from the table")
    reasons = {e["reason"] for e in cluster.events() if e["involvedObject"]["namespace"] == "doomed"}
    assert "ProjectDeleted" in reasons


def test_fallbacks_and_identity_routes(cluster: Cluster, sentry: Sentry, start_operator: Any) -> None:
    for slug in ("catch-all", "global-bin", "billing", "selected"):
        sentry.emu.state.add_project(ORG, TEAM, slug)
    cluster.pod("shop", "a", labels={"service.name": "selected", "tier": "web"})
    cluster.pod("shop", "b", labels={"service.name": "billing", "tier": "batch"})  # not selected, but a project slug
    cluster.pod("shop", "c", labels={"service.name": "nobody", "tier": "batch"})  # neither
    spec = {
        "fallbackProject": "catch-all",
        "autoProvision": {"enabled": True, "team": TEAM, "podSelector": {"matchLabels": {"tier": "web"}}},
    }
    cluster.route("shop", "shop", spec)
    start_operator(fallback_project="global-bin")
    eventually(lambda: len(routed(cluster.table())) == 2 and len(cluster.current_table().fallbacks) == 2, what="table")
    table = cluster.current_table()
    assert [(r.value, r.namespace, r.project) for r in table.routes] == [
        ("selected", "shop", f"{ORG}/selected"),
        ("billing", "shop", f"{ORG}/billing"),  # identity route, after the auto-provisioned ones
    ]
    assert [(f.namespace, f.project) for f in table.fallbacks] == [
        ("shop", f"{ORG}/catch-all"),
        (None, f"{ORG}/global-bin"),
    ]
    assert sentry.project("nobody") is None and sentry.project("billing") is not None
    assert table.unrouted == "drop" and not table.pending


def test_a_table_over_the_size_limit_is_still_written_without_its_least_important_entries(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    """SPEC §3: routing never freezes. The table is written with the last-ranked entries left out, says so
    (`truncated`, a metric, `TableTruncated`), and a route whose values were left out is not Ready."""
    cluster.pod("shop", "p0", labels={"service.name": "svc-0"})
    cluster.route("shop", "shop", {"autoProvision": {"enabled": True, "team": TEAM, "staleAfter": "1s"}})
    start_operator(routes_size_limit=1200)
    eventually(lambda: set(routed(cluster.table())) == {("svc-0", "shop")}, what="first table")
    eventually(lambda: cluster.ready("shop", "shop").get("status") == "True", what="Ready while it fits")
    for i in range(1, 6):
        cluster.pod("shop", f"p{i}", labels={"service.name": f"svc-{i}"})
    cut = eventually(lambda: (t := cluster.table()) is not None and t.truncated is not None and t, what="truncated")
    assert len(cut.to_json().encode()) <= 1200 and cut.truncated.droppedEntries > 0
    assert ("svc-0", "shop") in routed(cut) and len(routed(cut)) < 6  # table order: the first values stay
    assert REGISTRY.get_sample_value("sentryroute_routes_table_dropped_entries") == cut.truncated.droppedEntries

    def condition(kind: str) -> dict[str, Any]:
        conds = cluster.status("shop", "shop").get("conditions") or []
        return next((c for c in conds if c["type"] == kind), {})

    eventually(lambda: condition("TableTruncated").get("status") == "True", what="the TableTruncated condition")
    ready = eventually(lambda: (c := condition("Ready")).get("reason") == "TableTruncated" and c, what="not Ready")
    assert ready["status"] == "False" and "size limit" in ready["message"]
    assert condition("RoutesTableNearLimit")["status"] == "True"

    # A new route's mapping ranks before auto-provisioned values: it is written, and Ready, at once.
    sentry.emu.state.add_project(ORG, TEAM, "pay")
    cluster.route("pay", "pay", {"mapping": {"pay-svc": "pay"}})
    eventually(lambda: ("pay-svc", "pay") in routed(cluster.table()), what="the new route written")
    eventually(lambda: cluster.ready("pay", "pay").get("status") == "True", what="the new route Ready")

    # The pods go away; once their values are stale the table fits again and the route is Ready again.
    for i in range(1, 6):
        cluster.delete_pod("shop", f"p{i}")
    eventually(lambda: (t := cluster.table()) is not None and t.truncated is None, what="whole again")
    eventually(lambda: cluster.ready("shop", "shop").get("status") == "True", what="Ready again")
    assert condition("TableTruncated") == {}


def test_two_replicas_with_peering_only_one_writes(cluster: Cluster, sentry: Sentry, start_operator: Any) -> None:
    cluster.kube.apply({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "sentryroute"}})
    sentry.emu.state.add_project(ORG, TEAM, "orders")
    cluster.route("shop", "shop", {"mapping": {"orders": "orders"}})
    leader = start_operator(peering="sentryroute", priority=20)
    eventually(lambda: routed(cluster.table()), what="the leader's table")
    follower = start_operator(peering="sentryroute", priority=10)
    sentry.emu.state.add_project(ORG, TEAM, "payments")
    cluster.patch_route("shop", "shop", {"spec": {"mapping": {"payments": "payments"}}})
    # The table is visible before the writer's counter moves: wait for both, then check who wrote.
    eventually(lambda: len(routed(cluster.table())) == 2 and leader.writes >= 2, what="the leader's update")
    assert follower.writes == 0
    assert follower.app.engine.indexes is None  # frozen by peering: its reconcile loop never started

    leader.stop()  # the follower takes over once the leader's peering entry is gone
    sentry.emu.state.add_project(ORG, TEAM, "refunds")
    cluster.patch_route("shop", "shop", {"spec": {"mapping": {"refunds": "refunds"}}})
    eventually(
        lambda: len(routed(cluster.table())) == 3 and follower.writes >= 1, timeout=60, what="the follower took over"
    )

"""The planner with plain data (no kopf, no API): what each route covers, staleAfter, problems, scope."""

from __future__ import annotations

from typing import Any

import pytest
from sentryroute_operator.connections import Connection
from sentryroute_operator.derive import OwnerRef, pod_facts
from sentryroute_operator.derive.plan import (
    Item,
    ItemKind,
    PlanInput,
    ProblemReason,
    Sightings,
    owned_slugs,
    plan_routes,
)
from sentryroute_operator.derive.routes import RouteSpec, parse_route
from sentryroute_operator.provision.state import RouteMemory

CONNECTIONS = {
    "default": Connection(name="default", url="http://sentry", org_slug="acme", token_file="/t"),
    "team-only": Connection(
        name="team-only", url="http://sentry", org_slug="acme", token_file="/t", allowed_namespaces=("team-*",)
    ),
}


def route(namespace: str, name: str, created: str = "2026-01-01T00:00:00Z", **spec: Any) -> RouteSpec:
    body = {
        "metadata": {"namespace": namespace, "name": name, "uid": f"u-{name}", "creationTimestamp": created},
        "spec": spec,
    }
    return parse_route(body, default_attribute="service.name")


def pod(namespace: str, name: str, service: str | None = None, owner: tuple[str, str] | None = None, **labels: str):
    metadata: dict[str, Any] = {"namespace": namespace, "name": name, "labels": dict(labels)}
    if service is not None:
        metadata["labels"]["service.name"] = service
    if owner is not None:
        metadata["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return pod_facts({"metadata": metadata, "spec": {"containers": [{"name": "c"}]}})


def snapshot(routes: list[RouteSpec], pods: list[Any] = (), now: float = 100.0, **kw: Any) -> PlanInput:  # type: ignore[assignment]
    by_ns: dict[str, list[Any]] = {}
    for p in pods:
        by_ns.setdefault(p.namespace, []).append(p)
    return PlanInput(
        routes=routes,
        pods=by_ns,
        parents=kw.get("parents", {}),
        connections=CONNECTIONS,
        sightings=kw.get("sightings", {}),
        now=now,
        wall_now=1_800_000_000.0 + now - 100.0,
        namespaces=kw.get("namespaces", {}),
    )


def cluster_route(name: str, **spec: Any) -> RouteSpec:
    body = {
        "kind": "ClusterSentryRoute",
        "metadata": {"name": name, "uid": f"u-{name}", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    }
    return parse_route(body, default_attribute="service.name")


AUTO = {"enabled": True, "team": "backend"}


def test_items_mapping_then_auto_then_identity_then_fallback() -> None:
    spec = route("shop", "r", mapping={"orders": "ecommerce-orders"}, autoProvision=AUTO, fallbackProject="catch")
    pods = [pod("shop", "a", "beta"), pod("shop", "b", "alpha"), pod("shop", "c", "orders"), pod("other", "d", "x")]
    (plan,) = plan_routes(snapshot([spec], pods))
    assert plan.problem is None
    assert plan.items == (
        Item(ItemKind.MAPPED, "orders", "ecommerce-orders"),
        Item(ItemKind.AUTO, "alpha", "alpha"),  # sorted, the mapped value not repeated, other namespaces ignored
        Item(ItemKind.AUTO, "beta", "beta"),
        Item.fallback("catch"),
    )
    assert plan.sightings.present == {"alpha", "beta", "orders"}


def test_identity_items_come_from_unselected_pods_with_slug_names() -> None:
    auto = {**AUTO, "podSelector": {"matchLabels": {"tier": "web"}}}
    spec = route("shop", "r", autoProvision=auto)
    pods = [pod("shop", "a", "web-app", tier="web"), pod("shop", "b", "legacy-api"), pod("shop", "c", "Not A Slug")]
    (plan,) = plan_routes(snapshot([spec], pods))
    assert [(i.kind, i.value) for i in plan.items] == [(ItemKind.AUTO, "web-app"), (ItemKind.IDENTITY, "legacy-api")]


def test_stale_after_keeps_a_value_until_its_last_sighting_plus_stale_after() -> None:
    spec = route("shop", "r", autoProvision={**AUTO, "staleAfter": "10s"})
    (first,) = plan_routes(snapshot([spec], [pod("shop", "a", "alpha")], now=100.0))
    assert first.sightings.last_seen == {"alpha": 100.0}
    # The pod is gone at 105: the clock restarts when that is noticed, not at the last cycle that saw it.
    (gone,) = plan_routes(snapshot([spec], [], now=105.0, sightings={spec.key: first.sightings}))
    # gone_at: the same moment on the wall clock (epoch 1_800_000_005 here), what the status persists as lastSeen
    assert gone.sightings == Sightings(
        present=frozenset(), last_seen={"alpha": 105.0}, gone_at={"alpha": "2027-01-15T08:00:05Z"}
    )
    assert [i.value for i in gone.items] == ["alpha"]
    (still,) = plan_routes(snapshot([spec], [], now=115.0, sightings={spec.key: gone.sightings}))
    assert [i.value for i in still.items] == ["alpha"]
    (stale,) = plan_routes(snapshot([spec], [], now=115.1, sightings={spec.key: gone.sightings}))
    assert stale.items == () and stale.sightings.last_seen == {}


def test_owner_chain_through_parents_for_inferred_names() -> None:
    spec = route("shop", "r", autoProvision={**AUTO, "derive": "inferred"})
    pods = [pod("shop", "web-5d8f7-abc", owner=("ReplicaSet", "web-5d8f7"))]
    parents = {("shop", "ReplicaSet", "web-5d8f7"): OwnerRef("Deployment", "web")}
    (plan,) = plan_routes(snapshot([spec], pods, parents=parents))
    assert [i.value for i in plan.items] == ["web"]


def test_routes_in_creation_order_and_deleting_routes_left_out() -> None:
    newer = route("a", "newer", "2026-02-01T00:00:00Z", mapping={"x": "x"})
    older = route("b", "older", "2026-01-01T00:00:00Z", mapping={"x": "y"})
    deleting = route("c", "gone", mapping={"x": "z"})
    deleting = RouteSpec(**{**deleting.__dict__, "deleting": True})
    assert [p.spec.name for p in plan_routes(snapshot([newer, deleting, older]))] == ["older", "newer"]


def test_connection_problems_stop_the_route() -> None:
    missing = route("shop", "r", mapping={"x": "x"}, connection="nope")
    denied = route("shop", "s", mapping={"x": "x"}, connection="team-only")
    allowed = route("team-a", "t", mapping={"x": "x"}, connection="team-only")
    plans = {p.spec.name: p for p in plan_routes(snapshot([missing, denied, allowed]))}
    assert plans["r"].problem is not None and plans["r"].problem.reason == ProblemReason.CONNECTION_NOT_FOUND
    assert plans["s"].problem is not None and plans["s"].problem.reason == ProblemReason.CONNECTION_NOT_ALLOWED
    assert plans["r"].items == () and plans["s"].items == ()
    assert plans["t"].problem is None and plans["t"].items == (Item(ItemKind.MAPPED, "x", "x"),)


def test_project_template_and_scope() -> None:
    spec = route("shop", "r", autoProvision={**AUTO, "projectTemplate": "{namespace}-{service}"})
    (plan,) = plan_routes(snapshot([spec], [pod("shop", "a", "web")]))
    assert plan.items == (Item(ItemKind.AUTO, "web", "shop-web"),)
    assert spec.scope == "shop"


def test_last_seen_survives_a_restart_through_the_status() -> None:
    body = {
        "metadata": {"namespace": "shop", "name": "r", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"autoProvision": {**AUTO, "staleAfter": "1h"}},
        "status": {
            "projects": [
                {"value": "old", "slug": "old", "state": "Ready", "lastSeen": "2027-01-15T06:00:00Z"},
                {"value": "recent", "slug": "recent", "state": "Ready", "lastSeen": "2027-01-15T07:59:00Z"},
                {"value": "running", "slug": "running", "state": "Ready"},
            ]
        },
    }
    spec = parse_route(body, default_attribute="service.name")
    wall_now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    memory = RouteMemory.from_spec(spec, now=500.0, wall_now=wall_now)
    assert memory.sightings.last_seen == {"old": 500.0 - 7200, "recent": 440.0, "running": 500.0}
    (plan,) = plan_routes(
        PlanInput([spec], {}, {}, CONNECTIONS, {spec.key: memory.sightings}, now=500.0, wall_now=wall_now)
    )
    # "old" was gone 2 h before the restart: stale at once, not a full staleAfter later.
    assert [i.value for i in plan.items] == ["recent", "running"]
    assert plan.sightings.gone_at == {"recent": "2027-01-15T07:59:00Z", "running": "2027-01-15T08:00:00Z"}


NAMESPACES = {
    "bank": {"team": "payments", "tier": "prod"},
    "cards": {"team": "payments", "tier": "sandbox"},
    "loans": {"team": "payments"},
    "shop": {"team": "web"},
    "kube-system": {},
}


@pytest.mark.parametrize(
    ("selector", "covered"),
    [
        ({}, ("bank", "cards", "kube-system", "loans", "shop")),  # empty: every namespace that exists
        ({"matchLabels": {"team": "payments"}}, ("bank", "cards", "loans")),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod", "sandbox"]}]}, ("bank", "cards")),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["sandbox"]}]}, None),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, ("bank", "cards")),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, ("kube-system",)),
        (
            {
                "matchLabels": {"team": "payments"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["sandbox"]}],
            },
            ("bank", "loans"),  # matchLabels and every expression must hold
        ),
        ({"matchLabels": {"team": "nobody"}}, ()),
    ],
)
def test_a_namespace_selector_covers_the_namespaces_whose_labels_match(selector: Any, covered: Any) -> None:
    spec = cluster_route("payments", namespaceSelector=selector, mapping={"ledger": "payments-ledger"})
    (plan,) = plan_routes(snapshot([spec], namespaces=NAMESPACES))
    # NotIn is met by a namespace without the key, as in Kubernetes.
    assert plan.covered == (covered if covered is not None else ("bank", "kube-system", "loans", "shop"))
    assert plan.problem is None and spec.problem is None
    assert plan.items == (Item(ItemKind.MAPPED, "ledger", "payments-ledger"),)


def test_without_a_selector_a_cluster_route_covers_everything_cluster_wide() -> None:
    (plan,) = plan_routes(snapshot([cluster_route("all", mapping={"a": "b"})], namespaces=NAMESPACES))
    assert plan.covered is None and plan.spec.scope is None


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "team", "operator": "Typo", "values": ["a"]}]},
        {"matchExpressions": [{"key": "team", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]},
        {"matchLabels": {"team": "not a label value"}},
        {"matchExpressions": "team in (a)"},
    ],
)
def test_a_malformed_selector_selects_nothing_and_is_an_invalid_spec(selector: Any) -> None:
    spec = cluster_route("payments", namespaceSelector=selector, mapping={"ledger": "payments-ledger"})
    (plan,) = plan_routes(snapshot([spec], namespaces=NAMESPACES))
    assert plan.covered == ()
    assert spec.problem is not None and spec.problem.startswith("namespaceSelector: ")


def test_a_namespace_selector_on_a_sentryroute_is_ignored() -> None:
    """Only the cluster-scoped kind has one; a namespaced route covers its own namespace whatever its spec says."""
    spec = route("shop", "r", namespaceSelector={"matchLabels": {"team": "payments"}}, mapping={"a": "b"})
    (plan,) = plan_routes(snapshot([spec], namespaces=NAMESPACES))
    assert plan.covered is None and spec.namespace_selector is None


def test_auto_provision_of_a_selector_route_sees_only_the_covered_namespaces_pods() -> None:
    spec = cluster_route("payments", namespaceSelector={"matchLabels": {"team": "payments"}}, autoProvision=AUTO)
    pods = [pod("bank", "a", "ledger"), pod("shop", "b", "storefront"), pod("loans", "c", "scoring")]
    (plan,) = plan_routes(snapshot([spec], pods, namespaces=NAMESPACES))
    assert [(i.kind, i.value) for i in plan.items] == [(ItemKind.AUTO, "ledger"), (ItemKind.AUTO, "scoring")]


def test_owned_slugs_per_namespace_for_scoped_identity_routes() -> None:
    """SPEC §4: which projects a namespace's reported values may be identity-routed into."""
    routes = [
        route("shop", "shop", mapping={"orders": "shop-orders"}, fallbackProject="shop-catch-all"),
        cluster_route("all", mapping={"x": "platform"}),
        cluster_route("pay", namespaceSelector={"matchLabels": {"team": "payments"}}, mapping={"l": "pay-ledger"}),
    ]
    owned = owned_slugs(plan_routes(snapshot(routes, namespaces=NAMESPACES)), connection="default")
    assert owned["shop"] == {"shop-orders", "shop-catch-all"}
    assert owned[None] == {"platform"}  # cluster-wide: every namespace
    assert owned["bank"] == owned["loans"] == {"pay-ledger"}  # a selector: only the namespaces it selects
    assert "pay-ledger" not in owned.get("shop", set()) | owned[None]
    assert owned_slugs(plan_routes(snapshot(routes, namespaces=NAMESPACES)), connection="other") == {}

"""Router decisions: SPEC §3 matching semantics, and the compiled router against a plain reading of the spec."""

from __future__ import annotations

import random

import pytest
from sentryroute_forwarder.model import Destination
from sentryroute_forwarder.route.router import Router

from sentryroute.routes import RoutesTable
from tests.forwarder.support import endpoint, routes_table

SERVICE = "service.name"
NS = "k8s.namespace.name"


def project(name: str) -> Destination:
    return Destination("project", project=f"org/{name}")


def test_first_matching_route_wins():
    router = Router(routes_table([("checkout", "first"), ("checkout", "second")]))
    assert router.decide({SERVICE: "checkout"}) == (project("first"), SERVICE, "checkout")


def test_namespaced_routes_split_by_namespace_and_first_wins_without_one():
    router = Router(routes_table([("checkout", "shop-checkout", "shop"), ("checkout", "bank-checkout", "bank")]))
    assert router.decide({SERVICE: "checkout", NS: "bank"})[0] == project("bank-checkout")
    assert router.decide({SERVICE: "checkout", NS: "shop"})[0] == project("shop-checkout")
    # Telemetry without k8s.namespace.name can match a namespaced route: the first in order wins.
    assert router.decide({SERVICE: "checkout"})[0] == project("shop-checkout")
    # A namespace no route names matches none of them.
    unrouted = Destination("drop", reason="unrouted")
    assert router.decide({SERVICE: "checkout", NS: "other"}) == (unrouted, SERVICE, "checkout")


def test_refused_values_are_dropped_and_pending_values_held():
    router = Router(routes_table([("a", "a")], pending=["new-service"], refused=["unknown_service:python"]))
    assert router.decide({SERVICE: "unknown_service:python"}) == (
        Destination("drop", reason="refused"),
        SERVICE,
        "unknown_service:python",
    )
    assert router.decide({SERVICE: "new-service"}) == (Destination("hold", reason="pending"), SERVICE, "new-service")


def test_fallbacks_namespaced_only_for_their_namespace_then_cluster_wide():
    table = routes_table([("a", "a")], fallbacks=[("shop", "shop-catch-all"), (None, "cluster-catch-all")])
    router = Router(table)
    assert router.decide({SERVICE: "zzz", NS: "shop"}) == (project("shop-catch-all"), SERVICE, "zzz")
    assert router.decide({SERVICE: "zzz", NS: "bank"})[0] == project("cluster-catch-all")
    assert router.decide({SERVICE: "zzz"})[0] == project("cluster-catch-all")
    # A route still beats any fallback.
    assert router.decide({SERVICE: "a", NS: "shop"})[0] == project("a")


@pytest.mark.parametrize("policy", ["drop", "hold"])
@pytest.mark.parametrize(
    ("attributes", "value"),
    [({SERVICE: "nobody"}, "nobody"), ({}, None), ({SERVICE: 42}, None), ({SERVICE: True}, None)],
)
def test_unrouted_policy_covers_missing_and_non_string_values(policy, attributes, value):
    router = Router(routes_table([("a", "a")], unrouted=policy))
    assert router.decide(attributes) == (Destination(policy, reason="unrouted"), SERVICE, value)


def test_non_string_namespace_counts_as_absent():
    router = Router(routes_table([("checkout", "shop-checkout", "shop")]))
    assert router.decide({SERVICE: "checkout", NS: 7})[0] == project("shop-checkout")


def test_router_reads_only_the_attributes_it_needs():
    router = Router(routes_table([("a", "a")]))
    assert router.keys == {SERVICE, NS}


def test_thousands_of_routes_decide_without_scanning():
    table = routes_table([(f"svc-{i}", f"p-{i}") for i in range(5000)])
    router = Router(table)
    assert router.decide({SERVICE: "svc-4999"})[0] == project("p-4999")


def reference_decide(
    table: RoutesTable, attributes: dict[str, object], *, strict: bool = False
) -> tuple[Destination, str | None, str | None]:
    """SPEC §3 read literally: a linear scan of every list."""
    namespace = attributes.get(NS)
    namespace = namespace if isinstance(namespace, str) else None

    def text(attribute: str) -> str | None:
        value = attributes.get(attribute)
        return value if isinstance(value, str) else None

    def in_scope(scope: str | None, exact: bool | None = None) -> bool:
        return scope is None or scope == namespace or (namespace is None and not strict and not exact)

    for route in table.routes:
        if text(route.attribute) == route.value and in_scope(route.namespace, route.exact):
            return Destination("project", project=route.project), route.attribute, route.value
    for refused in table.refused:
        if text(refused.attribute) == refused.value and in_scope(refused.namespace):
            return Destination("drop", reason="refused"), refused.attribute, refused.value
    for pending in table.pending:
        if text(pending.attribute) == pending.value and in_scope(pending.namespace):
            return Destination("hold", reason="pending"), pending.attribute, pending.value
    for fallback in table.fallbacks:
        if fallback.namespace in (None, namespace):
            return Destination("project", project=fallback.project), fallback.attribute, text(fallback.attribute)
    attribute = table.routes[0].attribute if table.routes else SERVICE
    return Destination(table.unrouted, reason="unrouted"), attribute, text(attribute)


def random_table(rng: random.Random) -> RoutesTable:
    attributes = [SERVICE, "app"]
    values = [f"v{i}" for i in range(8)]
    namespaces = [None, "ns-a", "ns-b"]
    projects = [f"org/p{i}" for i in range(6)]
    data = {
        "version": 1,
        "routes": [
            {
                "attribute": rng.choice(attributes),
                "value": rng.choice(values),
                "namespace": rng.choice(namespaces),
                "project": rng.choice(projects),
                "exact": rng.choice([None, True]),  # a namespaceSelector's entry
            }
            for _ in range(rng.randrange(0, 14))
        ],
        "projects": {p: endpoint(i + 1) for i, p in enumerate(projects)},
        "refused": [
            {"attribute": rng.choice(attributes), "value": rng.choice(values), "reason": "x"}
            | {"namespace": rng.choice(namespaces)}
            for _ in range(rng.randrange(0, 3))
        ],
        "pending": [
            {"attribute": rng.choice(attributes), "value": rng.choice(values), "namespace": rng.choice(namespaces)}
            for _ in range(rng.randrange(0, 3))
        ],
        "fallbacks": [
            {"attribute": rng.choice(attributes), "namespace": rng.choice(namespaces), "project": rng.choice(projects)}
            for _ in range(rng.randrange(0, 3))
        ],
        "unrouted": rng.choice(["drop", "hold"]),
    }
    return RoutesTable.model_validate(data)


def random_attributes(rng: random.Random) -> dict[str, object]:
    attributes: dict[str, object] = {}
    options: list[tuple[str, list[object]]] = [
        (SERVICE, ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", 3]),
        ("app", ["v0", "v3", "v6", "zz"]),
        (NS, ["ns-a", "ns-b", "ns-c", 1]),
    ]
    for key, choices in options:
        if rng.random() < 0.8:
            attributes[key] = rng.choice(choices)
    return attributes


@pytest.mark.parametrize("strict", [False, True])
def test_compiled_router_agrees_with_a_linear_reading_of_the_spec(strict: bool):
    rng = random.Random(20261125)
    for _ in range(300):
        table = random_table(rng)
        router = Router(table, strict=strict)
        for _ in range(40):
            attributes = random_attributes(rng)
            expected = reference_decide(table, attributes, strict=strict)
            assert router.decide(attributes) == expected, (table, attributes)


def test_exact_entries_need_a_known_namespace_even_in_attribute_mode():
    """A namespaceSelector's entries (SPEC §2.1): telemetry claiming a covered namespace, never telemetry of none."""
    table = RoutesTable.model_validate(
        {
            "version": 1,
            "routes": [
                {"attribute": SERVICE, "value": "ledger", "namespace": ns, "project": "org/payments", "exact": True}
                for ns in ("bank", "cards")
            ]
            + [{"attribute": SERVICE, "value": "ledger", "namespace": "shop", "project": "org/shop"}],
            "projects": {"org/payments": endpoint(1), "org/shop": endpoint(2)},
        }
    )
    router = Router(table)
    assert router.decide({SERVICE: "ledger", NS: "cards"})[0] == project("payments")
    assert router.decide({SERVICE: "ledger"})[0] == project("shop")  # the ordinary namespaced route, as before
    assert router.decide({SERVICE: "ledger", NS: "loans"})[0] == Destination("drop", reason="unrouted")
    exact_only = Router(table.model_copy(update={"routes": table.routes[:2]}))
    assert exact_only.decide({SERVICE: "ledger"})[0] == Destination("drop", reason="unrouted")


def test_a_value_shared_by_thousands_of_namespaces_routes_each_its_own_way():
    routes = [("ledger", "payments", f"ns-{i}") for i in range(3000)]
    router = Router(routes_table(routes), strict=True)
    assert router.decide({SERVICE: "ledger"}, "ns-2999")[0] == project("payments")
    assert router.decide({SERVICE: "ledger"}, "ns-3000")[0] == Destination("drop", reason="unrouted")

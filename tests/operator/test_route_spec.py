"""SentryRoute bodies → RouteSpec: the operator re-checks what the CRD schema should already have rejected."""

from __future__ import annotations

from sentryroute_operator.derive.plan import Item, ItemKind
from sentryroute_operator.derive.routes import parse_route
from sentryroute_operator.provision.state import RouteMemory


def test_route_spec_parsing_survives_malformed_bodies() -> None:
    body = {
        "metadata": {"name": "r", "namespace": "n", "annotations": ["x"]},
        "spec": {"mapping": ["not", "a", "map"], "autoProvision": "yes", "deletionPolicy": "Sometimes"},
    }
    spec = parse_route(body, default_attribute="service.name")
    assert spec.mapping == {} and spec.auto is None and spec.deletion_policy == "Retain"
    assert spec.problem is not None and "deletionPolicy" in spec.problem
    bad_slug = parse_route({"metadata": {}, "spec": {"mapping": {"a": "Not A Slug"}}}, default_attribute="x")
    assert bad_slug.mapping == {} and bad_slug.problem is not None and "Not A Slug" in bad_slug.problem


def route(**spec: object) -> dict[str, object]:
    return {
        "metadata": {
            "name": "r",
            "namespace": "shop",
            "uid": "u1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": spec.pop("annotations", {}),
        },
        "spec": spec,
        "status": {
            "projects": [
                {"value": "made", "slug": "made", "id": "1", "state": "Ready", "created": True},
                {"value": "adopted", "slug": "adopted", "id": "2", "state": "Ready", "created": False},
            ]
        },
    }


def test_provenance_decides_creation_and_recreation() -> None:
    auto = {"enabled": True, "team": "backend"}
    spec = parse_route(route(autoProvision=auto), default_attribute="service.name")
    memory = RouteMemory.from_spec(spec, now=0.0)
    assert memory.may_create(spec, Item(ItemKind.AUTO, "new", "new"))  # never seen: create
    assert memory.may_create(spec, Item(ItemKind.AUTO, "made", "made"))  # created by this route: re-create
    assert not memory.may_create(spec, Item(ItemKind.AUTO, "adopted", "adopted"))  # adopted: never re-create
    assert not memory.may_create(spec, Item(ItemKind.IDENTITY, "x", "x"))
    assert not memory.may_create(spec, Item.fallback("f"))
    assert memory.sightings.last_seen == {"made": 0.0, "adopted": 0.0}  # stays routed for staleAfter past a restart
    assert memory.created_slugs() == ["made"]

    no_recreate = parse_route(
        route(autoProvision=auto, annotations={"sentryroute.dev/recreate": "false"}), default_attribute="service.name"
    )
    memory = RouteMemory.from_spec(no_recreate, now=0.0)
    assert not memory.may_create(no_recreate, Item(ItemKind.AUTO, "made", "made"))
    assert memory.may_create(no_recreate, Item(ItemKind.AUTO, "new", "new"))

    without_team = parse_route(
        route(autoProvision={"enabled": True}, mapping={"m": "target"}), default_attribute="service.name"
    )
    memory = RouteMemory.from_spec(without_team, now=0.0)
    assert not memory.may_create(without_team, Item(ItemKind.MAPPED, "m", "target"))


def test_auto_provision_needs_service_name() -> None:
    spec = parse_route(
        route(attribute="http.route", autoProvision={"enabled": True, "team": "t"}), default_attribute="x"
    )
    assert spec.auto is None and spec.problem is not None and "service.name" in spec.problem


def test_cluster_route_refuses_a_per_namespace_project_template() -> None:
    """A ClusterSentryRoute's auto-created projects are cluster-wide: `{namespace}` has no single value there."""
    body = {
        "kind": "ClusterSentryRoute",
        "metadata": {"name": "platform"},
        "spec": {"autoProvision": {"enabled": True, "projectTemplate": "{namespace}-{service}"}},
    }
    spec = parse_route(body, default_attribute="service.name")
    assert spec.auto is None
    assert spec.problem is not None and "{namespace} is not supported" in spec.problem
    namespaced = parse_route(
        {**body, "kind": "SentryRoute", "metadata": {"name": "r", "namespace": "shop"}},
        default_attribute="service.name",
    )
    assert namespaced.auto is not None and namespaced.problem is None

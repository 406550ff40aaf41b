"""SentryRoute bodies → RouteSpec: the operator re-checks what the CRD schema should already have rejected."""

from __future__ import annotations

from sentryroute_operator.routestate import Item, RouteRuntime
from sentryroute_operator.watch.routes import parse_route


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
    runtime = RouteRuntime.from_spec(parse_route(route(autoProvision=auto), default_attribute="service.name"), now=0.0)
    assert runtime.may_create(Item("auto", "new", "new"))  # never seen: create
    assert runtime.may_create(Item("auto", "made", "made"))  # created by this route: re-create
    assert not runtime.may_create(Item("auto", "adopted", "adopted"))  # adopted: never re-create
    assert not runtime.may_create(Item("identity", "x", "x")) and not runtime.may_create(Item("fallback", "", "f"))
    assert runtime.last_seen == {"made": 0.0, "adopted": 0.0}  # stays routed for staleAfter past a restart
    assert runtime.created_slugs() == ["made"]

    no_recreate = route(autoProvision=auto, annotations={"sentryroute.dev/recreate": "false"})
    runtime = RouteRuntime.from_spec(parse_route(no_recreate, default_attribute="service.name"), now=0.0)
    assert not runtime.may_create(Item("auto", "made", "made")) and runtime.may_create(Item("auto", "new", "new"))

    without_team = route(autoProvision={"enabled": True}, mapping={"m": "target"})
    runtime = RouteRuntime.from_spec(parse_route(without_team, default_attribute="service.name"), now=0.0)
    assert not runtime.may_create(Item("mapped", "m", "target"))


def test_auto_provision_needs_service_name() -> None:
    spec = parse_route(
        route(attribute="http.route", autoProvision={"enabled": True, "team": "t"}), default_attribute="x"
    )
    assert spec.auto is None and spec.problem is not None and "service.name" in spec.problem

"""Pure rendering rules (SPEC §3): order, shadowing, pending, fallbacks, revision, size guard, status."""

from __future__ import annotations

from sentryroute_operator.provision import ProjectState
from sentryroute_operator.render.conflicts import find_conflicts
from sentryroute_operator.render.size import check_size
from sentryroute_operator.render.status import ProjectStatus, ready_condition, same_status, status_body
from sentryroute_operator.render.table import ClusterFallback, RouteContribution, ValueRoute, build_routes_table

from sentryroute.routes import ProjectEndpoint, Refused, parse_routes_table


def endpoint(pid: str) -> ProjectEndpoint:
    base = f"https://o1.ingest.example.com/api/{pid}/integration/otlp/v1"
    return ProjectEndpoint(id=pid, tracesUrl=f"{base}/traces/", logsUrl=f"{base}/logs/", publicKey="a" * 32)


PROJECTS = {
    f"acme/{name}": endpoint(str(i)) for i, name in enumerate(["orders", "auto-b", "auto-a", "catch", "global", "x"], 1)
}


def contributions() -> list[RouteContribution]:
    newer = RouteContribution(
        order=(0, "2026-01-02T00:00:00Z", "b", "r"),
        namespace="b",
        attribute="service.name",
        mapped=(ValueRoute("orders", "acme/x"),),
        provisioned=(ValueRoute("auto-b", "acme/auto-b"), ValueRoute("warming", pending=True)),
        identity=(ValueRoute("x", "acme/x"),),
        fallback="acme/catch",
    )
    older = RouteContribution(
        order=(0, "2026-01-01T00:00:00Z", "a", "r"),
        namespace="a",
        attribute="service.name",
        mapped=(ValueRoute("orders", "acme/orders"), ValueRoute("failed")),
        provisioned=(ValueRoute("auto-a", "acme/auto-a"), ValueRoute("orders", "acme/auto-a")),
    )
    return [newer, older]


def test_order_mappings_then_auto_then_identity_then_fallbacks() -> None:
    table = build_routes_table(
        contributions=contributions(),
        projects=PROJECTS,
        cluster_fallback=ClusterFallback(attribute="service.name", project="acme/global"),
    )
    assert [(r.value, r.namespace, r.project) for r in table.routes] == [
        ("orders", "a", "acme/orders"),  # mappings first, by (creationTimestamp, namespace, name)
        ("orders", "b", "acme/x"),
        ("auto-a", "a", "acme/auto-a"),  # then auto-provisioned values in the same order
        ("auto-b", "b", "acme/auto-b"),
        ("x", "b", "acme/x"),  # then identity routes
    ]  # ("orders", "a") from auto is shadowed by the mapping of the same route and namespace
    assert [(f.namespace, f.project) for f in table.fallbacks] == [("b", "acme/catch"), (None, "acme/global")]
    assert [p.value for p in table.pending] == ["warming"]
    assert set(table.projects) == {"acme/orders", "acme/x", "acme/auto-a", "acme/auto-b", "acme/catch", "acme/global"}
    assert table.unrouted == "drop" and table.autoCreate is None


def test_a_namespace_selector_renders_exact_entries_per_covered_namespace_after_every_sentryroute() -> None:
    selector = RouteContribution(
        order=(1, "2025-01-01T00:00:00Z", "", "payments"),  # older than every SentryRoute, still after them
        namespace="",
        attribute="service.name",
        mapped=(ValueRoute("orders", "acme/global"), ValueRoute("new", pending=True)),
        fallback="acme/catch",
        covered=("a", "c"),
    )
    nothing = RouteContribution(
        order=(1, "2025-01-02T00:00:00Z", "", "none"),
        namespace="",
        attribute="service.name",
        mapped=(ValueRoute("solo", "acme/global"), ValueRoute("held", pending=True)),
        fallback="acme/catch",
        covered=(),  # selects no namespace: renders nothing, not even pending entries
    )
    table = build_routes_table(contributions=[selector, nothing, *contributions()], projects=PROJECTS)
    assert [(r.value, r.namespace, r.project, r.exact) for r in table.routes if r.value in ("orders", "solo")] == [
        ("orders", "a", "acme/orders", None),  # a's own SentryRoute shadows the selector's entry for a
        ("orders", "b", "acme/x", None),
        ("orders", "c", "acme/global", True),
    ]
    assert [(f.namespace, f.project) for f in table.fallbacks] == [
        ("b", "acme/catch"),
        ("a", "acme/catch"),
        ("c", "acme/catch"),
    ]
    # Pending per covered namespace too; mappings before auto-provisioned values.
    assert [(p.value, p.namespace) for p in table.pending] == [("new", "a"), ("new", "c"), ("warming", "b")]
    assert '"exact":true' in table.to_json() and table.to_json().count('"exact"') == 1


def test_revision_is_content_hash_and_round_trips() -> None:
    a = build_routes_table(contributions=contributions(), projects=PROJECTS)
    b = build_routes_table(contributions=list(reversed(contributions())), projects=PROJECTS)
    assert a.revision == b.revision and a.revision.startswith("sha256:")
    assert parse_routes_table(a.to_json()) == a
    c = build_routes_table(contributions=contributions()[:1], projects=PROJECTS)
    assert c.revision != a.revision


def test_auto_create_mode_holds_and_lists_refused() -> None:
    table = build_routes_table(
        contributions=[],
        projects={},
        unrouted="hold",
        auto_create_attribute="service.name",
        refused=[Refused(attribute="service.name", value="unknown_service", reason="placeholder")],
    )
    data = parse_routes_table(table.to_json())
    assert data.unrouted == "hold" and data.autoCreate is not None and data.refused[0].reason == "placeholder"


def test_size_guard() -> None:
    assert not check_size("x" * 100, limit=1000).near_limit
    assert check_size("x" * 800, limit=1000).near_limit
    assert not check_size("x" * 1000, limit=1000).too_large
    assert check_size("é" * 501, limit=1000).too_large  # UTF-8 bytes, not characters


def test_ready_condition_reasons() -> None:
    ready = ProjectStatus("a", "a", "1", ProjectState.READY, True)
    creating = ProjectStatus("b", "b", None, ProjectState.CREATING, False)
    forbidden = ProjectStatus("c", "c", None, ProjectState.FAILED, False, "Forbidden", "needs project:write")
    assert ready_condition([ready]).reason == "Provisioned"
    assert ready_condition([ready, creating]).reason == "Provisioning"
    cond = ready_condition([ready, creating, forbidden])
    assert (cond.status, cond.reason) == ("False", "Forbidden") and "project:write" in cond.message
    assert ready_condition([ready], route_problem=("ConnectionNotAllowed", "no")).reason == "ConnectionNotAllowed"
    assert ready_condition([]).message == "0/0 projects ready"


def test_status_transition_time_kept_when_unchanged() -> None:
    entries = [ProjectStatus("a", "a", "1", ProjectState.READY, False)]
    first = status_body(generation=1, entries=entries, condition=ready_condition(entries))
    old = dict(first["conditions"][0], lastTransitionTime="2020-01-01T00:00:00Z")
    second = status_body(generation=1, entries=entries, condition=ready_condition(entries), previous_conditions=[old])
    assert second["conditions"][0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert same_status(first, second)
    assert second["projects"] == [{"value": "a", "slug": "a", "id": "1", "state": "Ready", "created": False}]


def test_conflicts_go_to_the_entry_later_in_table_order() -> None:
    def route(
        order: tuple[int, str, str, str], *, mapped: tuple[ValueRoute, ...] = (), auto: tuple[ValueRoute, ...] = ()
    ):
        return RouteContribution(
            order=order, namespace=order[2], attribute="service.name", mapped=mapped, provisioned=auto
        )

    old = route((0, "2026-01-01T00:00:00Z", "a", "old"), auto=(ValueRoute("x", "acme/a-x"), ValueRoute("y", "acme/y")))
    new = route(
        (0, "2026-02-01T00:00:00Z", "b", "new"),
        mapped=(ValueRoute("x", "acme/b-x"),),
        auto=(ValueRoute("y", "acme/y"),),
    )
    newer = route((0, "2026-03-01T00:00:00Z", "c", "newer"), auto=(ValueRoute("x", "acme/c-x"),))
    conflicts = find_conflicts([newer, old, new])
    # The newer route's mapping comes first in the table, so the older route's auto entry is the shadowed one;
    # the same project twice is no conflict.
    assert set(conflicts) == {("a", "old", "x"), ("c", "newer", "x")}
    assert "b/new" in conflicts[("a", "old", "x")] and "k8s.namespace.name=a" in conflicts[("a", "old", "x")]

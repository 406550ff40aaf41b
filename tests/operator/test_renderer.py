"""The renderer with plain data: plans + provisioning answers → table, conflicts, statuses (SPEC §3).

Every rule of the rendering order, the previous entry kept on a failed call, pending, fallbacks, refused,
conflicts and status entries — no kopf, no API, no clock.
"""

from __future__ import annotations

from typing import Any

from sentryroute_operator.derive.plan import Item, ItemKind, ProblemReason, RoutePlan, RouteProblem, Sightings
from sentryroute_operator.derive.routes import RouteSpec, parse_route
from sentryroute_operator.provision import ProjectState, Provisioned, Reason
from sentryroute_operator.provision.state import RouteMemory, ValueState
from sentryroute_operator.render.renderer import ConnectionView, PreviousTable, RenderInput, render

from sentryroute.routes import ProjectEndpoint, Refused, RoutesTable

NOW = 1000.0


def endpoint(pid: str) -> ProjectEndpoint:
    base = f"https://o1.ingest.example.com/api/{pid}/integration/otlp/v1"
    return ProjectEndpoint(id=pid, tracesUrl=f"{base}/traces/", logsUrl=f"{base}/logs/", publicKey="a" * 32)


def route(namespace: str, name: str, created: str, **spec: Any) -> RouteSpec:
    body = {
        "metadata": {"namespace": namespace, "name": name, "uid": f"u-{name}", "creationTimestamp": created},
        "spec": spec,
    }
    return parse_route(body, default_attribute="service.name")


def ready(item: Item, pid: str, *, created: bool = False) -> ValueState:
    state = ValueState(slug=item.slug)
    result = Provisioned(item.value, item.slug, pid, endpoint(pid), ProjectState.READY, created, Reason.ADOPTED, "ok")
    state.record(result, now=0.0, warmup=0.0)
    return state


def failed(item: Item, reason: Reason, message: str = "gone") -> ValueState:
    state = ValueState(slug=item.slug)
    state.record(
        Provisioned(item.value, item.slug, None, None, ProjectState.FAILED, False, reason, message), now=0, warmup=0
    )
    return state


class Fixture:
    """Plans and memories built item by item, rendered with one connection `acme/`."""

    def __init__(self) -> None:
        self.plans: list[RoutePlan] = []
        self.memories: dict[tuple[str, str], RouteMemory] = {}

    def add(self, spec: RouteSpec, *items: tuple[Item, ValueState | None], problem: RouteProblem | None = None) -> None:
        self.plans.append(RoutePlan(spec, tuple(i for i, _ in items), problem, Sightings()))
        memory = self.memories.setdefault(spec.key, RouteMemory(uid=spec.uid))
        for item, state in items:
            if state is not None:
                memory.values[item.key] = state

    def render(self, previous: RoutesTable | None = None, **kw: Any):
        return render(
            RenderInput(
                plans=sorted(self.plans, key=lambda p: p.spec.order),
                memories=self.memories,
                connections={"default": ConnectionView("acme/", kw.pop("problem", None))},
                previous=PreviousTable.of(previous),
                now=kw.pop("now", NOW),
                **kw,
            )
        )


def routes(table: RoutesTable) -> list[tuple[str, str | None, str]]:
    return [(r.value, r.namespace, r.project) for r in table.routes]


M, A, ID = ItemKind.MAPPED, ItemKind.AUTO, ItemKind.IDENTITY


def test_order_mappings_then_auto_then_identity_each_by_route_age_then_fallbacks() -> None:
    old = route("a", "old", "2026-01-01T00:00:00Z", fallbackProject="catch-a")
    new = route("b", "new", "2026-02-01T00:00:00Z")
    f = Fixture()
    mapped_b, auto_b, ident_b = Item(M, "m-b", "pb"), Item(A, "auto-b", "auto-b"), Item(ID, "id-b", "id-b")
    mapped_a, auto_a, fallback_a = Item(M, "m-a", "pa"), Item(A, "auto-a", "auto-a"), Item.fallback("catch-a")
    f.add(new, (mapped_b, ready(mapped_b, "1")), (auto_b, ready(auto_b, "2")), (ident_b, ready(ident_b, "3")))
    f.add(old, (mapped_a, ready(mapped_a, "4")), (auto_a, ready(auto_a, "5")), (fallback_a, ready(fallback_a, "6")))
    cluster_fallback = ready(Item.fallback("global"), "7")
    out = f.render(cluster_fallback=cluster_fallback)
    assert routes(out.table) == [
        ("m-a", "a", "acme/pa"),
        ("m-b", "b", "acme/pb"),
        ("auto-a", "a", "acme/auto-a"),
        ("auto-b", "b", "acme/auto-b"),
        ("id-b", "b", "acme/id-b"),
    ]
    assert [(x.namespace, x.project) for x in out.table.fallbacks] == [("a", "acme/catch-a"), (None, "acme/global")]
    assert out.table.projects["acme/pa"].id == "4" and len(out.table.projects) == 7


def test_a_failed_call_keeps_the_previous_entry_a_definite_failure_does_not() -> None:
    spec = route("shop", "r", "2026-01-01T00:00:00Z")
    kept, missing, fresh = Item(A, "kept", "kept"), Item(A, "missing", "missing"), Item(A, "fresh", "fresh")
    transient = ValueState(slug="kept", transient="HTTP 503")  # no answer this process, a transient error
    f = Fixture()
    f.add(spec, (kept, ready(kept, "1")), (missing, ready(missing, "2")))
    first = f.render().table
    f = Fixture()
    f.add(spec, (kept, transient), (missing, failed(missing, Reason.NOT_FOUND)), (fresh, None))
    out = f.render(previous=first)
    assert routes(out.table) == [("kept", "shop", "acme/kept")]  # the previous entry survives a 503
    assert out.table.projects["acme/kept"].id == "1"
    assert [p.value for p in out.table.pending] == ["fresh"]  # never answered, no previous entry: pending
    entries = {e.value: e for e in out.statuses[spec.key].entries}
    assert entries["kept"].state == ProjectState.CREATING and "HTTP 503" in entries["kept"].message
    assert entries["missing"].state == ProjectState.FAILED and entries["missing"].reason == Reason.NOT_FOUND


def test_an_auth_failure_keeps_the_last_good_endpoint() -> None:
    spec = route("shop", "r", "2026-01-01T00:00:00Z")
    item = Item(M, "orders", "orders")
    state = ready(item, "9")
    state.record(
        Provisioned("orders", "orders", None, None, ProjectState.FAILED, False, Reason.FORBIDDEN, "403"),
        now=0,
        warmup=0,
    )
    f = Fixture()
    f.add(spec, (item, state))
    out = f.render(problem=RouteProblem(ProblemReason.FORBIDDEN, "needs project:read"))
    assert routes(out.table) == [("orders", "shop", "acme/orders")]
    assert out.statuses[spec.key].condition.reason == "Forbidden"


def test_warming_projects_are_pending_then_routed() -> None:
    spec = route("shop", "r", "2026-01-01T00:00:00Z")
    item = Item(A, "new", "new")
    state = ValueState(slug="new")
    state.record(
        Provisioned("new", "new", "5", endpoint("5"), ProjectState.READY, True, Reason.CREATED, "made"),
        now=NOW,
        warmup=10,
    )
    f = Fixture()
    f.add(spec, (item, state))
    warming = f.render(now=NOW + 1)
    assert warming.table.routes == () and [p.value for p in warming.table.pending] == ["new"]
    assert warming.statuses[spec.key].entries[0].state == ProjectState.CREATING
    done = f.render(now=NOW + 10)
    assert routes(done.table) == [("new", "shop", "acme/new")] and done.table.pending == ()


def test_conflicts_both_render_the_later_entry_says_conflict() -> None:
    old = route("a", "old", "2026-01-01T00:00:00Z")
    new = route("b", "new", "2026-02-01T00:00:00Z")
    x_old, x_new = Item(A, "x", "a-x"), Item(M, "x", "b-x")
    f = Fixture()
    f.add(old, (x_old, ready(x_old, "1")))
    f.add(new, (x_new, ready(x_new, "2")))
    out = f.render()
    assert routes(out.table) == [("x", "b", "acme/b-x"), ("x", "a", "acme/a-x")]  # mappings before auto values
    old_entry = out.statuses[old.key].entries[0]
    assert old_entry.state == ProjectState.CONFLICT and "b/new" in old_entry.message
    assert out.statuses[new.key].entries[0].state == ProjectState.READY
    assert out.statuses[old.key].condition.reason == "Conflict"


def test_shadowed_duplicates_and_identity_only_when_the_project_exists() -> None:
    spec = route("shop", "r", "2026-01-01T00:00:00Z")
    mapped, auto, ident = Item(M, "x", "orders"), Item(A, "x", "x"), Item(ID, "legacy", "legacy")
    f = Fixture()
    f.add(spec, (mapped, ready(mapped, "1")), (auto, ready(auto, "2")), (ident, None))
    out = f.render()
    assert routes(out.table) == [("x", "shop", "acme/orders")]  # same (attribute, value, namespace): first wins
    assert out.table.pending == ()  # an identity candidate without an answer is not held
    assert [e.value for e in out.statuses[spec.key].entries] == ["x", "x"]


def test_refused_and_reported_values_with_auto_create() -> None:
    made, warming = ValueState(slug="made"), ValueState(slug="warming")
    made.record(
        Provisioned("Made", "made", "3", endpoint("3"), ProjectState.READY, True, Reason.CREATED, ""), now=0, warmup=0
    )
    warming.record(
        Provisioned("w", "w", "4", endpoint("4"), ProjectState.READY, True, Reason.CREATED, ""), now=NOW, warmup=10
    )
    scoped = ValueState(slug="shop-orders")
    scoped.record(
        Provisioned("orders", "shop-orders", "5", endpoint("5"), ProjectState.READY, True, Reason.CREATED, ""),
        now=0,
        warmup=0,
    )
    refused = [
        Refused(attribute="service.name", value="unknown_service", reason="placeholder"),
        Refused(attribute="service.name", value="bank-ledger", reason="taken", namespace="shop"),
    ]
    reported = {(None, "Made"): made, (None, "w"): warming, ("shop", "orders"): scoped}
    out = Fixture().render(reported=reported, auto_create=True, refused=refused)
    # A value reported from a namespace (a peer-mode forwarder, SPEC §4) is routed for that namespace only.
    assert routes(out.table) == [("Made", None, "acme/made"), ("orders", "shop", "acme/shop-orders")]
    assert [(p.value, p.namespace) for p in out.table.pending] == [("w", None)]
    assert out.table.unrouted == "hold" and out.table.autoCreate is not None and out.table.refused == tuple(refused)
    assert Fixture().render(refused=refused).table.refused == ()  # only with auto-create
    # After a restart: a restored value with no answer yet keeps its entry of the table written before.
    restored = Fixture().render(reported={("shop", "orders"): ValueState(slug="shop-orders")}, previous=out.table)
    assert routes(restored.table) == [("orders", "shop", "acme/shop-orders")]


def test_fallbacks_previous_kept_failed_dropped_and_route_problem() -> None:
    spec = route("shop", "r", "2026-01-01T00:00:00Z", fallbackProject="catch")
    fallback = Item.fallback("catch")
    f = Fixture()
    f.add(spec, (fallback, ready(fallback, "8")))
    first = f.render(cluster_fallback=ready(Item.fallback("global"), "9")).table
    f = Fixture()
    f.add(spec, (fallback, None))
    kept = f.render(previous=first, cluster_fallback=ValueState(slug="global", transient="503"))
    assert [(x.namespace, x.project) for x in kept.table.fallbacks] == [("shop", "acme/catch"), (None, "acme/global")]
    f = Fixture()
    f.add(spec, (fallback, failed(fallback, Reason.NOT_FOUND, "catch does not exist")))
    gone = f.render(previous=first, cluster_fallback=failed(Item.fallback("global"), Reason.NOT_FOUND))
    assert gone.table.fallbacks == ()
    condition = gone.statuses[spec.key].condition
    assert (condition.status, condition.reason) == ("False", "FallbackProjectUnavailable")


def test_status_before_an_answer_keeps_what_was_written_before_a_restart() -> None:
    body = {
        "metadata": {"namespace": "shop", "name": "r", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"mapping": {"orders": "orders"}},
        "status": {"projects": [{"value": "orders", "slug": "orders", "id": "4", "state": "Ready", "created": True}]},
    }
    spec = parse_route(body, default_attribute="service.name")
    f = Fixture()
    f.plans.append(RoutePlan(spec, (Item(M, "orders", "orders"),), None, Sightings()))
    f.memories[spec.key] = RouteMemory.from_spec(spec, now=NOW)
    (entry,) = f.render().statuses[spec.key].entries
    assert (entry.state, entry.id, entry.created) == (ProjectState.READY, "4", True)


def test_a_route_with_a_problem_renders_nothing_and_says_why() -> None:
    spec = route("shop", "r", "2026-01-01T00:00:00Z", mapping={"x": "x"})
    f = Fixture()
    f.add(spec, problem=RouteProblem(ProblemReason.CONNECTION_NOT_ALLOWED, "not from shop"))
    out = f.render()
    assert out.table.routes == () and out.statuses[spec.key].condition.reason == "ConnectionNotAllowed"


def test_healing_states_slug_reserved_is_held_pending_a_gone_adopted_project_stays_routed() -> None:
    spec = route("shop", "r", "2026-01-01T00:00:00Z")
    waiting, gone = Item(A, "waiting", "waiting"), Item(M, "orders", "orders")
    reserved = failed(waiting, Reason.SLUG_RESERVED, "slug held by a project pending deletion")
    adopted = ready(gone, "7")
    lost = Provisioned("orders", "orders", "7", None, ProjectState.FAILED, False, Reason.PROJECT_GONE, "gone")
    adopted.record(lost, now=0, warmup=0)
    f = Fixture()
    f.add(spec, (waiting, reserved), (gone, adopted))
    out = f.render()
    assert [p.value for p in out.table.pending] == ["waiting"]  # held by the forwarders while the create retries
    assert routes(out.table) == [("orders", "shop", "acme/orders")]  # data held, then dropped when the hold expires
    entries = {e.value: e for e in out.statuses[spec.key].entries}
    assert (entries["orders"].state, entries["orders"].reason, entries["orders"].id) == (
        ProjectState.FAILED,
        Reason.PROJECT_GONE,
        "7",
    )
    assert reserved.waiting_for_slug and not reserved.settled

"""Fitting the routes table under the ConfigMap limit (SPEC §3): what is left out first, and that it fits."""

from __future__ import annotations

from unittest import mock

from sentryroute_operator.provision.autocreate import AutoCreatePolicy
from sentryroute_operator.provision.reported import MAX_REFUSED_BYTES, ReportedValues
from sentryroute_operator.render.fit import fit_table

from sentryroute.routes import Fallback, Pending, ProjectEndpoint, Refused, Route, RoutesTable, canonical_json


def endpoint(n: int) -> ProjectEndpoint:
    base = f"https://o1.ingest.sentry.io/api/{n}/integration/otlp/v1"
    return ProjectEndpoint(id=str(n), tracesUrl=f"{base}/traces/", logsUrl=f"{base}/logs/", publicKey="a" * 32)


def table(routes: int, pending: int, refused: int, *, value_size: int = 20) -> RoutesTable:
    pad = "x" * value_size
    return RoutesTable(
        routes=tuple(
            Route(attribute="service.name", value=f"r{i}-{pad}", namespace="shop", project=f"acme/p{i}")
            for i in range(routes)
        ),
        projects={f"acme/p{i}": endpoint(i + 1) for i in range(routes)} | {"acme/catch": endpoint(999)},
        pending=tuple(Pending(attribute="service.name", value=f"w{i}-{pad}") for i in range(pending)),
        fallbacks=(Fallback(attribute="service.name", namespace="shop", project="acme/catch"),),
        refused=tuple(Refused(attribute="service.name", value=f"x{i}-{pad}", reason="denied") for i in range(refused)),
        unrouted="hold",
    ).with_revision()


def size(t: RoutesTable) -> int:
    return len(t.to_json().encode())


def test_a_table_that_fits_is_written_as_it_is() -> None:
    whole = table(5, 5, 5)
    fitted = fit_table(whole, limit=size(whole))
    assert fitted.table == whole and not fitted.truncated and whole.truncated is None


def test_refused_goes_first_then_pending_then_routes_from_the_last() -> None:
    whole = table(20, 20, 20)
    without_refused = whole.model_copy(update={"refused": ()}).with_revision()
    cut = fit_table(whole, limit=size(without_refused) + 300)  # room for a few refused entries only
    assert cut.table.routes == whole.routes and cut.table.pending == whole.pending
    assert 0 < len(cut.table.refused) < 20 and cut.table.refused == whole.refused[: len(cut.table.refused)]
    assert cut.dropped_refused == cut.dropped == 20 - len(cut.table.refused)

    only_routes = table(12, 0, 0)  # the first 12 routes and their projects
    cut = fit_table(whole, limit=size(only_routes) + 40)
    assert cut.table.routes == whole.routes[:12] and cut.table.pending == () and cut.table.refused == ()
    assert (cut.dropped_routes, cut.dropped_pending, cut.dropped_refused) == (8, 20, 20)
    assert set(cut.table.projects) == {f"acme/p{i}" for i in range(12)} | {"acme/catch"}  # dropped routes' projects go
    assert cut.table.fallbacks == whole.fallbacks and cut.table.unrouted == "hold"
    assert cut.table.truncated is not None and cut.table.truncated.droppedEntries == 48
    assert size(cut.table) <= size(only_routes) + 40


def test_ten_thousand_entries_and_4kb_values_are_fitted_in_one_pass() -> None:
    flood = table(2000, 4000, 4000, value_size=100)
    limit = 256 * 1024
    # One pass: entries are measured one by one, and the whole table is serialised a fixed number of times (the
    # check, the base, the fitted result), not once per attempted cut. Counted, not timed.
    with mock.patch.object(RoutesTable, "to_json", autospec=True, side_effect=RoutesTable.to_json) as whole_tables:
        cut = fit_table(flood, limit=limit)
    assert size(cut.table) <= limit and cut.truncated and len(cut.table.routes) > 0
    assert cut.table.refused == () and whole_tables.call_count <= 4, whole_tables.call_count

    huge = table(0, 0, 400, value_size=4096)  # ~400 distinct 4 KB values: 156 % of a 1 MiB limit
    cut = fit_table(huge, limit=1024 * 1024)
    assert size(cut.table) <= 1024 * 1024 and 0 < len(cut.table.refused) < 400


def test_nothing_fits_when_the_fallbacks_alone_exceed_the_limit() -> None:
    whole = table(3, 0, 0)
    cut = fit_table(whole, limit=100)
    assert cut.table.routes == () and size(cut.table) > 100  # the caller does not write it (see configmap.py)


def test_refused_is_capped_in_bytes_keeping_the_most_recent() -> None:
    values = ReportedValues(
        attribute="service.name", auto_create=True, team="t", policy=AutoCreatePolicy(deny=(), per_hour=1)
    )
    for i in range(10_000):
        values._refuse(("shop" if i % 2 else None, f"value-{i:05d}-" + "y" * 80), "rate_limited")
    refused = values.refusals()
    used = sum(len(canonical_json(r.model_dump(exclude_none=True)).encode()) + 1 for r in refused)
    assert used <= MAX_REFUSED_BYTES and len(refused) > 100
    assert any(r.value.startswith("value-09999-") for r in refused)  # the most recent refusal is kept
    assert not any(r.value.startswith("value-00000-") for r in refused)

"""A ClusterSentryRoute's namespaceSelector end to end (SPEC §2.1): the real operator watching Namespaces, a real
forwarder in `--namespace-from peer` mode reading the table through the API, Pods on distinct loopback addresses
of the emulated Kubernetes API, clients sending from those addresses, and the Sentry emulator.

The platform route covers the namespaces labelled `team=payments`: data of a selected namespace reaches its
projects, data of another namespace does not (not even when it claims a selected namespace), and relabelling
a namespace moves it in or out of the route while data keeps flowing. In `attribute` mode the client's claimed
`k8s.namespace.name` is what the selector's entries are matched against, and telemetry claiming none is not
covered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.config import ObjectRef

from sentryroute.routes import RoutesTable
from tests.forwarder.support import local_settings, metric_value, resource_spans, traces_request, wait_until
from tests.forwarder.tenancy_support import pod, post_from

from .conftest import OPERATOR_NS, ORG, TEAM, Cluster, RunningOperator, Sentry

SHOP, BANK = "127.0.0.41", "127.0.0.42"
LEDGER, CATCH_ALL = "payments-ledger", "payments-catch-all"


@pytest.fixture
async def forwarder(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Forwarder]:
    cluster.namespace("bank", {"team": "payments"})
    cluster.namespace("shop", {"team": "web"})
    cluster.kube.apply(pod("shop-app", "shop", SHOP))
    cluster.kube.apply(pod("bank-app", "bank", BANK))
    settings = local_settings(
        tmp_path / "unused.json",
        routes_configmap=ObjectRef(OPERATOR_NS, "sentryroute-routes"),
        namespace_from="peer",
        peer_wait=1.0,
        batch_timeout=0.05,
    )
    async with Forwarder(settings) as running:
        yield running


def covered(table: RoutesTable) -> dict[str, set[str | None]]:
    """value (or "<fallback>") → the namespaces of the selector's entries for it."""
    out: dict[str, set[str | None]] = {}
    for route in table.routes:
        if route.exact:
            out.setdefault(route.value, set()).add(route.namespace)
    for fallback in table.fallbacks:
        if fallback.project == f"{ORG}/{CATCH_ALL}":
            out.setdefault("<fallback>", set()).add(fallback.namespace)
    return out


async def table_in_use(cluster: Cluster, forwarder: Forwarder, check: Callable[[RoutesTable], bool], what: str) -> None:
    """Wait until the operator wrote a table that passes `check` and the forwarder routes by it."""

    def loaded() -> bool:
        table = cluster.table()
        if table is None or not check(table):
            return False
        return metric_value(forwarder, "sentryroute_routes_revision_info", {"revision": table.revision}) == 1

    await wait_until(loaded, within=60, what=what)


async def send(forwarder: Forwarder, source: str, tag: str, *services: str, claim: str | None = None) -> None:
    url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
    resources = (resource_spans(s, namespace=claim, spans=1, tag=tag) for s in services)
    assert await post_from(source, url, traces_request(*resources).SerializeToString()) == 200


def spans_in(sentry: Sentry, slug: str, tag: str) -> int:
    project = sentry.project(slug)
    return 0 if project is None else sum(1 for s in sentry.emu.received.spans(project.id) if s.name.startswith(tag))


def unrouted(forwarder: Forwarder) -> float:
    return metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "traces", "reason": "unrouted"})


async def test_a_selector_routes_the_selected_namespaces_and_follows_their_labels(
    cluster: Cluster, sentry: Sentry, start_operator: Callable[..., RunningOperator], forwarder: Forwarder
) -> None:
    for slug in (LEDGER, CATCH_ALL):
        sentry.emu.state.add_project(ORG, TEAM, slug)
    cluster.cluster_route(
        "payments",
        {
            "namespaceSelector": {"matchLabels": {"team": "payments"}},
            "mapping": {"ledger": LEDGER},
            "fallbackProject": CATCH_ALL,
        },
    )
    start_operator()
    await table_in_use(cluster, forwarder, lambda t: covered(t) == {"ledger": {"bank"}, "<fallback>": {"bank"}}, "bank")
    await wait_until(lambda: forwarder.not_ready_reason() is None, within=30, what="the forwarder ready")

    # bank is selected: its mapped value and its unmatched values reach the platform projects.
    await send(forwarder, BANK, "b1-", "ledger", "teller")
    await wait_until(lambda: spans_in(sentry, LEDGER, "b1-") == 1, within=30, what="bank's ledger routed")
    await wait_until(lambda: spans_in(sentry, CATCH_ALL, "b1-") == 1, within=30, what="bank's other value")
    # shop is not, even when its data claims to come from bank: dropped as unrouted (no other route or fallback).
    await send(forwarder, SHOP, "s1-", "ledger", "storefront", claim="bank")
    await wait_until(lambda: unrouted(forwarder) == 2, within=30, what="shop's data unrouted")
    assert spans_in(sentry, LEDGER, "s1-") == 0 and spans_in(sentry, CATCH_ALL, "s1-") == 0

    # Relabelled: shop moves into the selection, bank out of it.
    cluster.label_namespace("shop", {"team": "payments"})
    cluster.label_namespace("bank", {"team": "retail"})
    moved = {"ledger": {"shop"}, "<fallback>": {"shop"}}
    await table_in_use(cluster, forwarder, lambda t: covered(t) == moved, "shop in, bank out")
    await send(forwarder, SHOP, "s2-", "ledger")
    await wait_until(lambda: spans_in(sentry, LEDGER, "s2-") == 1, within=30, what="shop's ledger routed now")
    await send(forwarder, BANK, "b2-", "ledger")
    await wait_until(lambda: unrouted(forwarder) == 3, within=30, what="bank's data no longer routed")
    assert spans_in(sentry, LEDGER, "b2-") == 0
    assert cluster.cluster_route_ready("payments").get("status") == "True"


async def test_in_attribute_mode_the_claimed_namespace_is_what_the_selector_sees(
    cluster: Cluster, sentry: Sentry, start_operator: Callable[..., RunningOperator], tmp_path: Path
) -> None:
    """The trusting mode (SPEC §2.1): telemetry claiming a selected namespace is routed, telemetry claiming none
    is not (the selector's entries are `exact`), unlike a SentryRoute's namespaced routes in this mode."""
    sentry.emu.state.add_project(ORG, TEAM, LEDGER)
    cluster.namespace("bank", {"team": "payments"})
    cluster.namespace("shop", {"team": "web"})
    cluster.cluster_route(
        "payments", {"namespaceSelector": {"matchLabels": {"team": "payments"}}, "mapping": {"ledger": LEDGER}}
    )
    start_operator()
    settings = local_settings(
        tmp_path / "unused.json", routes_configmap=ObjectRef(OPERATOR_NS, "sentryroute-routes"), batch_timeout=0.05
    )
    async with Forwarder(settings) as forwarder:
        await table_in_use(cluster, forwarder, lambda t: covered(t) == {"ledger": {"bank"}}, "bank")
        await send(forwarder, "127.0.0.1", "a1-", "ledger", claim="bank")
        await send(forwarder, "127.0.0.1", "a2-", "ledger", claim="shop")
        await send(forwarder, "127.0.0.1", "a3-", "ledger")
        await wait_until(lambda: spans_in(sentry, LEDGER, "a1-") == 1, within=30, what="the claim of bank routed")
        await wait_until(lambda: unrouted(forwarder) == 2, within=30, what="shop's claim and no claim unrouted")
        assert spans_in(sentry, LEDGER, "a2-") == 0 and spans_in(sentry, LEDGER, "a3-") == 0

"""Tenancy end to end (SPEC §4, §3): the real operator and a real forwarder in `--namespace-from peer` mode, the
emulated Kubernetes API with Pods on distinct loopback addresses, clients sending from those addresses, and the
Sentry emulator as both the Web API and the OTLP ingest.

- Scoped auto-create: a pod of `shop` sending values that belong to `bank` (a value bank's route maps, and
  bank's project slug itself) gets projects created for shop; bank's project never receives shop's data.
- Floods never freeze routing: 400 distinct 4 KB values and 10,000 distinct values from one pod, with a
  small table limit; the table keeps being written, and a SentryRoute created during the flood is routed
  and Ready.
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

from .conftest import OPERATOR_NS, ORG, TEAM, Cluster, RunningOperator, Sentry, routed

SHOP, BANK = "127.0.0.31", "127.0.0.32"


@pytest.fixture
async def forwarder(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Forwarder]:
    cluster.kube.apply(pod("shop-app", "shop", SHOP))
    cluster.kube.apply(pod("bank-app", "bank", BANK))
    settings = local_settings(
        tmp_path / "unused.json",
        routes_configmap=ObjectRef(OPERATOR_NS, "sentryroute-routes"),
        report_configmap=ObjectRef(OPERATOR_NS, "sentryroute-requests"),
        report_interval=0.1,
        namespace_from="peer",
        peer_wait=1.0,
        batch_timeout=0.05,
    )
    async with Forwarder(settings) as running:
        yield running


async def wait_for_table(cluster: Cluster, check: Callable[[RoutesTable], object], *, what: str) -> None:
    await wait_until(lambda: (t := cluster.table()) is not None and check(t), within=60, what=what)


async def send(forwarder: Forwarder, source: str, *services: str, tag: str = "") -> int:
    url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
    body = traces_request(*(resource_spans(s, spans=1, tag=tag) for s in services)).SerializeToString()
    return await post_from(source, url, body)


def spans_in(sentry: Sentry, slug: str, tag: str) -> int:
    project = sentry.project(slug)
    return 0 if project is None else sum(1 for s in sentry.emu.received.spans(project.id) if s.name.startswith(tag))


async def test_values_of_one_namespace_never_reach_another_namespaces_project(
    cluster: Cluster, sentry: Sentry, start_operator: Callable[..., RunningOperator], forwarder: Forwarder
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "bank-ledger")
    cluster.route("bank", "bank", {"mapping": {"ledger": "bank-ledger"}})
    start_operator(auto_create=True, auto_create_team=TEAM)
    await wait_for_table(cluster, lambda t: ("ledger", "bank") in routed(t), what="bank's route")
    await wait_until(lambda: forwarder.not_ready_reason() is None, within=30, what="the forwarder ready")

    # bank's own data; then shop naming bank's mapped value, and bank's project slug (an identity route attempt)
    assert await send(forwarder, BANK, "ledger", tag="bank-") == 200
    assert await send(forwarder, SHOP, "ledger", "bank-ledger", tag="shop-") == 200
    await wait_until(lambda: spans_in(sentry, "shop-ledger", "shop-") == 1, within=60, what="shop-ledger created")
    await wait_until(lambda: spans_in(sentry, "shop-bank-ledger", "shop-") == 1, within=60, what="shop's own")
    await wait_until(lambda: spans_in(sentry, "bank-ledger", "bank-") == 1, what="bank's data in bank's project")
    assert spans_in(sentry, "bank-ledger", "shop-") == 0  # never shop's data in bank's project
    table = cluster.current_table()
    assert routed(table)[("ledger", "shop")] == f"{ORG}/shop-ledger"
    assert routed(table)[("bank-ledger", "shop")] == f"{ORG}/shop-bank-ledger"
    assert ("ledger", None) not in routed(table) and ("bank-ledger", None) not in routed(table)


async def test_floods_of_long_and_of_many_values_never_stop_the_table_being_written(
    cluster: Cluster, sentry: Sentry, start_operator: Callable[..., RunningOperator], forwarder: Forwarder
) -> None:
    limit = 48 * 1024
    start_operator(auto_create=True, auto_create_team=TEAM, auto_create_rate=2, routes_size_limit=limit)
    await wait_for_table(cluster, lambda t: t.autoCreate is not None, what="the first table")
    await wait_until(lambda: forwarder.not_ready_reason() is None, within=30, what="the forwarder ready")

    long_values = [f"{i:04d}-" + "x" * 4091 for i in range(400)]  # 4 KB each
    for start in range(0, 400, 50):
        assert await send(forwarder, SHOP, *long_values[start : start + 50]) == 200
    assert metric_value(forwarder, "sentryroute_dropped_items_total", {"signal": "traces", "reason": "value_too_long"})
    many = [f"flood-{i:05d}" for i in range(10_000)]
    for start in range(0, 10_000, 500):
        assert await send(forwarder, SHOP, *many[start : start + 500]) == 200

    def flooded(t: RoutesTable) -> bool:  # refused for shop only, and more than the table limit holds
        return t.truncated is not None and len(t.refused) >= 100 and all(r.namespace == "shop" for r in t.refused)

    await wait_for_table(cluster, flooded, what="the flood refused for shop, the table fitted under its limit")
    # During the flood, a new route is written and becomes Ready: routing is not frozen.
    sentry.emu.state.add_project(ORG, TEAM, "pay")
    cluster.route("pay", "pay", {"mapping": {"pay-svc": "pay"}})
    await wait_for_table(cluster, lambda t: ("pay-svc", "pay") in routed(t), what="the new route written")
    await wait_until(lambda: cluster.ready("pay", "pay").get("status") == "True", within=30, what="Ready")
    table = cluster.current_table()
    assert len(table.to_json().encode()) <= limit
    assert all(len(r.value) <= 100 for r in table.refused)  # no 4 KB value ever reached the table
    assert len([p for p in sentry.emu.state.projects_by_id.values() if p.slug.startswith("shop-flood-")]) <= 2

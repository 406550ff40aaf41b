"""The operator end to end: derivation chains → projects created/adopted → exact routes table → status."""

from __future__ import annotations

import time
from typing import Any

from sentryroute.routes import ProjectEndpoint, Route, RoutesTable

from .conftest import CANARY, ORG, TEAM, Cluster, LogCapture, Sentry, eventually


def env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def make_pods(cluster: Cluster) -> None:
    """One pod per link of both chains, plus the traps (init container, valueFrom, placeholder)."""
    ns = "shop"
    cluster.pod(ns, "p-env", containers=[[env("OTEL_SERVICE_NAME", "svc-env")]])
    cluster.pod(ns, "p-attrs", containers=[[env("OTEL_RESOURCE_ATTRIBUTES", "team=a,service.name=svc-attrs")]])
    cluster.pod(ns, "p-label", labels={"service.name": "svc-label"})
    cluster.pod(ns, "p-annotation", annotations={"resource.opentelemetry.io/service.name": "svc-annotation"})
    cluster.pod(ns, "p-instance", labels={"app.kubernetes.io/instance": "svc-instance", "app.kubernetes.io/name": "x"})
    cluster.pod(ns, "p-name", labels={"app.kubernetes.io/name": "svc-name"})
    cluster.owned("apps/v1", "ReplicaSet", ns, "svc-deploy-5d8f7", owner=("Deployment", "svc-deploy"))
    cluster.pod(ns, "svc-deploy-5d8f7-abcde", owner=("apps/v1", "ReplicaSet", "svc-deploy-5d8f7"))
    cluster.owned("batch/v1", "Job", ns, "svc-cron-29001", owner=("CronJob", "svc-cron"))
    cluster.pod(ns, "svc-cron-29001-xyz", owner=("batch/v1", "Job", "svc-cron-29001"))
    cluster.pod(ns, "svc-sts-0", owner=("apps/v1", "StatefulSet", "svc-sts"))
    cluster.pod(ns, "svc-bare")
    cluster.pod(
        ns,
        "p-multi",
        containers=[
            [env("OTEL_SERVICE_NAME", "svc-multi-a")],
            [{"name": "OTEL_SERVICE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            [env("OTEL_SERVICE_NAME", "unknown_service:python"), env("OTEL_SERVICE_NAME", "unknown_service")],
            [env("OTEL_SERVICE_NAME", "svc-multi-b")],
        ],
        init_containers=[[env("OTEL_SERVICE_NAME", "svc-init")]],
        labels={"app.kubernetes.io/name": "svc-multi-fallback"},
    )


DERIVED = [
    "svc-annotation", "svc-attrs", "svc-bare", "svc-cron", "svc-deploy", "svc-env", "svc-instance", "svc-label",
    "svc-multi-a", "svc-multi-b", "svc-multi-fallback", "svc-name", "svc-sts",
]  # fmt: skip


def expected_table(sentry: Sentry, *, mapped: dict[str, str], auto: list[str], ns: str = "shop") -> RoutesTable:
    routes = [
        Route(attribute="service.name", value=v, namespace=ns, project=f"{ORG}/{s}") for v, s in sorted(mapped.items())
    ]
    routes += [Route(attribute="service.name", value=v, namespace=ns, project=f"{ORG}/{v}") for v in auto]
    slugs = set(mapped.values()) | set(auto)
    projects = {f"{ORG}/{s}": ProjectEndpoint(**sentry.endpoint_of(s)) for s in slugs}
    return RoutesTable(routes=tuple(routes), projects=projects).with_revision()


def test_derivation_provisioning_table_and_status(
    cluster: Cluster, sentry: Sentry, start_operator: Any, logs: LogCapture
) -> None:
    existing = sentry.emu.state.add_project(ORG, TEAM, "ecommerce-orders")
    sentry.emu.state.add_project(ORG, TEAM, "svc-env")  # adopted by the auto-provisioned value
    for filler in ("aaa", "bbb", "ccc", "zzz"):  # pagination: the org listing spans several pages of 2
        sentry.emu.state.add_project(ORG, TEAM, filler)
    make_pods(cluster)
    cluster.pod("other", "elsewhere", labels={"service.name": "not-in-this-namespace"})
    cluster.route(
        "shop",
        "shop",
        {
            "mapping": {"orders-service": "ecommerce-orders", "products-service": "ecommerce-products"},
            "autoProvision": {"enabled": True, "team": TEAM, "platform": "python", "derive": "inferred"},
        },
    )
    operator = start_operator()

    mapped = {"orders-service": "ecommerce-orders", "products-service": "ecommerce-products"}
    want = lambda: expected_table(sentry, mapped=mapped, auto=DERIVED)  # noqa: E731 (keys exist only once created)
    eventually(lambda: cluster.table() == want(), timeout=60, what="the exact table")
    assert cluster.current_table().to_json() == want().to_json()

    # Projects: created under the team with explicit slugs, default rules off, the route's platform.
    for value in DERIVED:
        project = sentry.project(value)
        assert project is not None and project.teams == [TEAM], value
    created = sentry.project("svc-label")
    assert created.platform == "python" and created.default_rules is False
    assert sentry.project("ecommerce-products").teams == [TEAM]  # a mapping target created by an autoProvision route
    assert sentry.project("ecommerce-orders").id == existing.id
    assert sentry.project("svc-init") is None and sentry.project("not-in-this-namespace") is None

    # Status: Ready, one entry per value with provenance.
    def ready() -> bool:
        cond = cluster.ready("shop", "shop")
        return bool(cond and cond["status"] == "True")

    eventually(ready, what="Ready=True")
    status = cluster.status("shop", "shop")
    entries = cluster.entries("shop", "shop")
    assert set(entries) == set(DERIVED) | set(mapped)
    assert entries["orders-service"] == {
        "value": "orders-service", "slug": "ecommerce-orders", "id": existing.id, "state": "Ready", "created": False,
        "message": f"{ORG}/ecommerce-orders adopted",
    }  # fmt: skip
    assert entries["svc-env"]["created"] is False and entries["svc-label"]["created"] is True
    assert entries["products-service"]["created"] is True
    assert status["projectCount"] == len(entries) and status["conditions"][0]["reason"] == "Provisioned"

    # Events: one per creation and adoption.
    reasons = {(e["reason"], e["involvedObject"]["name"]) for e in cluster.events()}
    assert ("ProjectCreated", "shop") in reasons and ("ProjectAdopted", "shop") in reasons

    # Idle means idle: about one cycle per re-verification (1 s here) and its writes, no busy loop.
    cycles = operator.app.engine.cycles
    time.sleep(2.0)
    assert operator.app.engine.cycles - cycles < 40

    # Pagination: svc-env sits on the third page of 2; it was adopted from the listing, not looked up.
    access = [line for line in logs.lines if line.startswith("aiohttp.access")]
    assert not [line for line in access if "GET /api/0/projects/acme/svc-env/ " in line]
    assert len([line for line in access if "GET /api/0/organizations/acme/projects/ " in line]) >= 3

    # The token never leaks: logs, status, Events, ConfigMaps.
    assert not [line for line in logs.lines if CANARY in line]
    assert CANARY not in str(cluster.route_object("shop", "shop"))
    assert CANARY not in str(cluster.events())
    assert CANARY not in str(cluster.kube.objects("v1/configmaps"))

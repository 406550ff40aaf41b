"""The operator against a misbehaving Sentry: 429, 5xx, 401/403 and token rotation, deleted projects, hostile names."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from .conftest import CANARY, ORG, SCOPES, TEAM, Cluster, LogCapture, Sentry, TableRecorder, eventually, routed


def test_rate_limited_connection_never_blocks_another(
    cluster: Cluster, sentry: Sentry, start_operator: Any, tmp_path: Path
) -> None:
    state = sentry.emu.state
    state.add_org("slowcorp")
    state.add_team("slowcorp", "ops")
    state.add_project("slowcorp", "ops", "slow-api")
    state.add_project(ORG, TEAM, "fast-api")
    connections = tmp_path / "two.yaml"
    url = sentry.emu.url
    connections.write_text(
        yaml.safe_dump(
            {
                "connections": [
                    {"name": "default", "url": url, "orgSlug": ORG, "tokenSecret": "sentry-token"},
                    {"name": "slow", "url": url, "orgSlug": "slowcorp", "tokenSecret": "sentry-token"},
                ]
            }
        )
    )
    # Every call for the slow org answers 429 with a reset 4 s away; the client waits on it.
    sentry.emu.faults.api_rate_limit(r".*slowcorp.*", count=1000, reset_in=4.0)
    cluster.route("slow", "slow", {"mapping": {"slow": "slow-api"}, "connection": "slow"})
    cluster.route("fast", "fast", {"mapping": {"fast": "fast-api"}})
    started = time.monotonic()
    start_operator(connections_file=str(connections))
    eventually(lambda: ("fast", "fast") in routed(cluster.table()), what="the fast route")
    assert time.monotonic() - started < 4.0, "the rate-limited connection held up the other one"
    assert ("slow", "slow") not in routed(cluster.table())
    sentry.emu.faults.clear()
    eventually(lambda: routed(cluster.table()).get(("slow", "slow")) == "slowcorp/slow-api", timeout=60, what="slow")


def test_server_errors_keep_previous_entries(
    cluster: Cluster, sentry: Sentry, start_operator: Any, recorder: TableRecorder
) -> None:
    for slug in ("alpha", "beta"):
        sentry.emu.state.add_project(ORG, TEAM, slug)
    cluster.route("shop", "shop", {"mapping": {"a": "alpha", "b": "beta"}})
    start_operator()
    eventually(lambda: len(routed(cluster.table())) == 2, what="both routes")
    seen = len(recorder.tables)
    sentry.emu.faults.api_fail(r".*", status=502, count=200)  # every re-verification fails for a while
    time.sleep(3.0)  # three re-verification intervals
    sentry.emu.faults.clear()
    cluster.pod("shop", "p", labels={"x": "y"})  # a harmless change to make sure the loop is still alive
    time.sleep(1.0)
    assert all(len(routed(t)) == 2 for t in recorder.tables[seen:])
    assert len(routed(cluster.table())) == 2
    eventually(lambda: cluster.ready("shop", "shop")["status"] == "True", what="still Ready")


def test_missing_scope_then_token_rotated_in_its_secret(
    cluster: Cluster, sentry: Sentry, start_operator: Any, logs: LogCapture
) -> None:
    state = sentry.emu.state
    state.add_project(ORG, TEAM, "existing")
    read_only = state.add_token(scopes=("org:read", "project:read"))
    state.revoke_token(CANARY)
    cluster.secret("sentry-token", read_only)
    cluster.route(
        "shop",
        "shop",
        {"mapping": {"old": "existing", "new": "brand-new"}, "autoProvision": {"enabled": True, "team": TEAM}},
    )
    start_operator()
    cond = eventually(lambda: (c := cluster.ready("shop", "shop")) and c["reason"] == "Forbidden" and c, what="403")
    assert cond["status"] == "False" and "project:write" in cond["message"]
    # The readable part still routes.
    eventually(lambda: routed(cluster.table()) == {("old", "shop"): f"{ORG}/existing"}, what="old routed")

    # Revoke the token (401 from now on) and rotate the Secret: the operator re-reads it on the 401.
    state.revoke_token(read_only)
    rotated = state.add_token(scopes=SCOPES)
    cluster.secret("sentry-token", rotated)
    eventually(lambda: cluster.ready("shop", "shop")["status"] == "True", timeout=60, what="Ready after rotation")
    assert set(routed(cluster.table())) == {("old", "shop"), ("new", "shop")}
    assert not [line for line in logs.lines if rotated in line or read_only in line]


def test_unauthorized_reports_ready_false_and_keeps_routes(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "existing")
    cluster.route("shop", "shop", {"mapping": {"old": "existing"}})
    start_operator()
    eventually(lambda: cluster.ready("shop", "shop")["status"] == "True", what="Ready")
    sentry.emu.state.revoke_token(CANARY)
    cond = eventually(lambda: (c := cluster.ready("shop", "shop")) and c["reason"] == "Unauthorized" and c, what="401")
    assert cond["status"] == "False"
    assert routed(cluster.table()) == {("old", "shop"): f"{ORG}/existing"}  # an auth problem is not a missing project


def hard_delete(sentry: Sentry, slug: str) -> None:
    """The project is gone for good (deletion finished), so its slug is free again."""
    project = sentry.project(slug)
    with sentry.emu.state.lock:
        del sentry.emu.state.projects_by_id[project.id]


def test_deleted_projects_recreated_only_when_this_route_created_them(
    cluster: Cluster, sentry: Sentry, start_operator: Any, logs: LogCapture
) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "adopted")
    cluster.pod("shop", "p", labels={"service.name": "made-here"})
    cluster.pod("keep", "p", labels={"service.name": "not-again"})
    auto = {"enabled": True, "team": TEAM, "staleAfter": "1h"}
    cluster.route("shop", "shop", {"mapping": {"adopted-svc": "adopted"}, "autoProvision": auto})
    cluster.route("keep", "keep", {"autoProvision": auto}, annotations={"sentryroute.dev/recreate": "false"})
    start_operator()
    eventually(lambda: len(routed(cluster.table())) == 3, what="three routes")
    first_id = sentry.project("made-here").id
    old_ids = {slug: sentry.project(slug).id for slug in ("adopted", "not-again")}
    eventually(lambda: cluster.entries("shop", "shop")["made-here"]["created"] is True)

    for slug in ("made-here", "adopted", "not-again"):
        hard_delete(sentry, slug)
    eventually(
        lambda: (p := sentry.project("made-here")) is not None and p.id != first_id, timeout=30, what="re-created"
    )
    eventually(
        lambda: cluster.current_table().projects[f"{ORG}/made-here"].id == sentry.project("made-here").id,
        timeout=30,
        what="table updated to the re-created project",
    )
    assert sentry.project("adopted") is None and sentry.project("not-again") is None
    # Projects this route did not create (or may not re-create) stay routed to the gone project: the forwarders
    # hold their data and drop it, counted, when the hold expires; the status says why.
    entries = eventually(lambda: (e := cluster.entries("shop", "shop"))["adopted-svc"]["state"] == "Failed" and e)
    assert "no longer exists" in entries["adopted-svc"]["message"] and "adopted" in entries["adopted-svc"]["message"]
    assert entries["adopted-svc"]["id"] == old_ids["adopted"]
    kept = eventually(lambda: (e := cluster.entries("keep", "keep"))["not-again"]["state"] == "Failed" and e)
    assert "sentryroute.dev/recreate" in kept["not-again"]["message"]
    table = cluster.current_table()
    assert set(routed(table)) == {("made-here", "shop"), ("adopted-svc", "shop"), ("not-again", "keep")}
    assert table.projects[f"{ORG}/adopted"].id == old_ids["adopted"]
    reasons = [e["reason"] for e in cluster.events() if "no longer exists" in e.get("message", "")]
    assert reasons and set(reasons) == {"ProvisioningFailed"}
    posts = [line for line in logs.lines if "POST /api/0/teams/acme/backend/projects/" in line]
    assert len(posts) == 3  # made-here twice, not-again once; never the adopted project


HOSTILE = {
    "../../x": "x-9cdf6a",
    "a?b=c": "a-b-c-1f09eb",
    "Ünïcödé-服务": "unicode-5f55e1",
    "a" * 300: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-9835fa",
}


def test_hostile_service_names_become_fixed_slugs(
    cluster: Cluster, sentry: Sentry, start_operator: Any, logs: LogCapture
) -> None:
    for i, name in enumerate(HOSTILE):
        cluster.pod("shop", f"p{i}", containers=[[{"name": "OTEL_SERVICE_NAME", "value": name}]])
    cluster.route("shop", "shop", {"autoProvision": {"enabled": True, "team": TEAM}})
    start_operator()
    eventually(lambda: len(routed(cluster.table())) == len(HOSTILE), what="all hostile values routed")
    table = cluster.current_table()
    for name, expected in HOSTILE.items():
        assert routed(table)[(name, "shop")] == f"{ORG}/{expected}"
        assert sentry.project(expected) is not None
    paths = [line.split()[3] for line in logs.lines if line.startswith("aiohttp.access")]
    assert paths and all(re.fullmatch(r"/api/0/[a-z0-9_/-]+/", p) for p in paths), paths


def test_rotated_key_is_noticed_and_missing_mapping_target_is_not_created(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    project = sentry.emu.state.add_project(ORG, TEAM, "orders")
    cluster.route("shop", "shop", {"mapping": {"orders-svc": "orders", "ghost-svc": "ghost"}})
    start_operator()
    old_key = sentry.endpoint_of("orders")["publicKey"]
    eventually(lambda: cluster.current_table().projects[f"{ORG}/orders"].publicKey == old_key, what="first key")
    entries = eventually(lambda: (e := cluster.entries("shop", "shop"))["ghost-svc"]["state"] == "Failed" and e)
    assert "does not exist" in entries["ghost-svc"]["message"] and sentry.project("ghost") is None
    assert cluster.ready("shop", "shop")["status"] == "False"

    new_key = sentry.emu.state.add_key(ORG, project.id, name="rotated").public
    sentry.emu.state.set_key_active(old_key, False)
    eventually(lambda: cluster.current_table().projects[f"{ORG}/orders"].publicKey == new_key, what="the rotated key")
    assert set(routed(cluster.table())) == {("orders-svc", "shop")}


def test_slug_held_by_a_project_pending_deletion_is_slug_reserved(
    cluster: Cluster, sentry: Sentry, start_operator: Any
) -> None:
    cluster.pod("shop", "p", labels={"service.name": "doomed"})
    cluster.route("shop", "shop", {"autoProvision": {"enabled": True, "team": TEAM}})
    start_operator()
    eventually(lambda: cluster.entries("shop", "shop")["doomed"]["created"] is True, what="created")
    sentry.emu.state.delete_project(ORG, "doomed")  # pending deletion: hidden, but its slug is still taken
    cond = eventually(lambda: (c := cluster.ready("shop", "shop")) and c["reason"] == "SlugReserved" and c)
    assert cond["status"] == "False" and "doomed" in cond["message"]
    assert cluster.entries("shop", "shop")["doomed"]["state"] == "Failed"
    eventually(lambda: routed(cluster.table()) == {}, what="the route leaves the table")

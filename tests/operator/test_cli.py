"""`sentryroute operator` as users run it: a subprocess configured by environment variables only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from sentryroute.demo.stack import free_ports

from .conftest import CANARY, OPERATOR_NS, ORG, REPO, TEAM, Cluster, Sentry, eventually, routed


def test_cli_from_environment_with_json_logs_and_liveness(cluster: Cluster, sentry: Sentry, tmp_path: Path) -> None:
    sentry.emu.state.add_project(ORG, TEAM, "orders")
    cluster.route("shop", "shop", {"mapping": {"orders-svc": "orders"}})
    token_file = tmp_path / "token"
    token_file.write_text(CANARY + "\n")
    port, metrics_port = free_ports(2)
    env = {
        **os.environ,
        "POD_NAMESPACE": OPERATOR_NS,
        "SENTRY_URL": sentry.emu.url,
        "SENTRY_ORG_SLUG": ORG,
        "SENTRY_AUTH_TOKEN_FILE": str(token_file),
        "SENTRYROUTE_REVERIFY_INTERVAL": "1s",
        "SENTRYROUTE_LOG_FORMAT": "json",
        "SENTRYROUTE_LIVENESS": f"http://127.0.0.1:{port}/healthz",
        "SENTRYROUTE_METRICS": f"127.0.0.1:{metrics_port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentryroute", "operator"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        eventually(lambda: routed(cluster.table()) == {("orders-svc", "shop"): f"{ORG}/orders"}, what="the table")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert "sentryroute_routes_table_writes_total" in metrics and "sentryroute_routes_table_bytes" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines), lines[:5]
    assert CANARY not in output


def test_kopf_run_with_the_module_path(cluster: Cluster, sentry: Sentry) -> None:
    """`kopf run -m sentryroute_operator.kopf_entry`: kopf's own CLI, settings from SENTRYROUTE_* variables."""
    sentry.emu.state.add_project(ORG, TEAM, "orders")
    cluster.route("shop", "shop", {"mapping": {"orders-svc": "orders"}})
    env = {
        **os.environ,
        "SENTRYROUTE_NAMESPACE": OPERATOR_NS,
        "SENTRY_URL": sentry.emu.url,
        "SENTRY_ORG_SLUG": ORG,
        "SENTRY_AUTH_TOKEN": CANARY,
    }
    kopf = Path(sys.executable).with_name("kopf")
    command = [str(kopf), "run", "--all-namespaces", "--standalone", "-m", "sentryroute_operator.kopf_entry"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        eventually(lambda: routed(cluster.table()) == {("orders-svc", "shop"): f"{ORG}/orders"}, what="the table")
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert CANARY not in output

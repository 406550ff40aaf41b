"""The Grafana dashboard and the PrometheusRule: off by default, delivered as the chart says, and built only from
metrics the programs really export — checked against a running forwarder and operator, scraped over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentryroute.demo.stack import OPERATOR_NAMESPACE, Stack, running_stack
from tests.chart.rendering import CHART, REPO, one, render

DASHBOARD = CHART / "dashboards" / "sentryroute.json"
PROMQL = REPO / "tests" / "chart" / "promql"
MONITORING = CHART / "ci" / "monitoring-values.yaml"
_METRIC = re.compile(r"\b(?:sentryroute|process)_[a-z0-9_]+\b")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return queries


def rule_expressions() -> list[str]:
    rule = one(render(MONITORING), "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def exported_names(exposition: str) -> set[str]:
    """Every series name a query may use: samples, and the names of families that have no sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
        names |= {family.name, *(family.name + s for s in suffixes.get(family.type, ()))}
        names |= {sample.name for sample in family.samples}
    return names


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


@pytest.fixture(scope="module")
def running() -> Iterator[Stack]:
    """A forwarder (on the example routes file) and an operator (emulated Kubernetes API and Sentry), as processes."""
    with running_stack() as stack:
        stack.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
        token = stack.workdir / "token"
        token.write_text(stack.sentry.state.add_token(scopes=["org:read", "project:read"]))
        stack.sentry.state.add_org("acme")
        stack.start_process(
            "operator",
            ["operator", "--namespace", OPERATOR_NAMESPACE, "--metrics", f"127.0.0.1:{stack.operator_metrics_port}"],
            {
                "KUBECONFIG": str(stack.kube.kubeconfig_path),
                "SENTRY_URL": stack.sentry.url,
                "SENTRY_ORG_SLUG": "acme",
                "SENTRY_AUTH_TOKEN_FILE": str(token),
            },
        )
        stack.start_process(
            "forwarder",
            [
                "forwarder", "--routes", str(REPO / "examples" / "routes.json"),
                "--admin", f"127.0.0.1:{stack.admin_port}",
                "--otlp-http", f"127.0.0.1:{stack.http_port}", "--otlp-grpc", f"127.0.0.1:{stack.grpc_port}",
            ],
            {"KUBECONFIG": os.devnull},
        )  # fmt: skip
        yield stack


def test_every_metric_the_dashboard_and_the_rules_use_is_exported(running: Stack) -> None:
    stack = running
    used = {name for query in dashboard_queries() + rule_expressions() for name in _METRIC.findall(query)}
    assert len(used) > 20, used
    missing: set[str] = used
    deadline = time.monotonic() + 60
    while missing:  # the operator's families appear once its modules are imported; wait for the condition
        stack.check_processes()
        exported: set[str] = set()
        for port in (stack.admin_port, stack.operator_metrics_port):
            with contextlib.suppress(OSError):  # not listening yet
                exported |= exported_names(scrape(port))
        missing = used - exported
        if missing and time.monotonic() > deadline:
            pytest.fail(f"used by the dashboard or the rules but exported by neither program: {sorted(missing)}")
        time.sleep(0.2)


def test_every_query_parses_with_the_prometheus_grammar() -> None:
    """Prometheus' own PromQL grammar (@prometheus-io/lezer-promql, scripts/install-promql-check.sh) accepts every
    query; Grafana's `$__rate_interval` is replaced by a duration first, as Grafana does before sending it."""
    checker = PROMQL / "check.mjs"
    if not (PROMQL / "node_modules" / "@prometheus-io" / "lezer-promql").is_dir():
        message = "tests/chart/promql/node_modules is missing: run scripts/install-promql-check.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Grafana's `label_values(SELECTOR, label)` (template variables) is not PromQL: its selector is.
    queries = [
        re.sub(r"^label_values\((.*), \w+\)$", r"\1", q).replace("$__rate_interval", "1m")
        for q in dashboard_queries() + rule_expressions()
    ]
    result = subprocess.run(
        ["node", str(checker)], input=json.dumps(queries), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    broken = subprocess.run(
        ["node", str(checker)],
        input=json.dumps(["sum by (a (rate(x[5m]))"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(broken.stdout), "the checker must catch a syntax error"


def test_dashboard_and_rules_are_off_by_default() -> None:
    kinds = {(m["kind"], m["metadata"]["name"]) for m in render()}
    assert not [k for k in kinds if k[0] == "PrometheusRule"]
    assert not [k for k in kinds if k[0] == "ConfigMap" and k[1].endswith("-dashboard")]


def test_dashboard_configmap_carries_the_importable_file_for_the_grafana_sidecar() -> None:
    configmap = one(render(MONITORING), "ConfigMap", "-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "sentryroute"}
    assert json.loads(configmap["data"]["sentryroute.json"]) == json.loads(DASHBOARD.read_text())


def test_rules_cover_what_an_sre_is_paged_for() -> None:
    rule = one(render(MONITORING), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {
        "SentryrouteItemsDropped",
        "SentryrouteQueueNearBound",
        "SentryrouteQueueWriteErrors",
        "SentryrouteProjectRateLimited",
        "SentryrouteProjectFailing",
        "SentryrouteRoutesTableRejected",
        "SentryrouteRoutesTableStale",
        "SentryrouteForwarderNotReady",
        "SentryrouteProvisioningFailed",
    } <= set(alerts)
    assert alerts["SentryrouteProjectRateLimited"]["for"] == "1h"  # from the values
    for alert in alerts.values():
        assert 'namespace="observability"' in alert["expr"], alert["expr"]  # scoped to the release's namespace
        assert alert["annotations"]["summary"] and alert["labels"]["severity"] in ("info", "warning", "critical")


def test_the_readme_picture_can_evaluate_every_dashboard_panel(running: Stack) -> None:
    """scripts/dashboard_picture.py draws panels by evaluating their queries (sentryroute/demo/dashboard.py):
    each time-series query of the dashboard is in the subset it understands, and the core ones have data."""
    from sentryroute.demo.dashboard import Samples, evaluate, panel_queries

    stack = running
    samples = Samples(epoch=time.time())
    for at in (0.0, 1.0):
        samples.add(at, {"forwarder": scrape(stack.admin_port), "operator": scrape(stack.operator_metrics_port)})
    results = {
        query: evaluate(query, samples, 1)
        for _title, targets in panel_queries(json.loads(DASHBOARD.read_text()))
        for query, _legend in targets
    }
    assert len(results) > 20
    ready = next(v for q, v in results.items() if q.startswith("sum(sentryroute_ready"))
    assert ready == {(): 1.0}
    memory = next(v for q, v in results.items() if "process_resident_memory_bytes" in q)
    assert {labels for labels in memory} == {(("pod", "forwarder"),), (("pod", "operator"),)}

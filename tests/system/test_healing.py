"""The whole system heals a project deleted in Sentry while data flows, and loses nothing.

Real operator and forwarder processes, the emulated Kubernetes API and the Sentry emulator (the demo's stack).
A project the operator created is deleted while spans flow: Sentry answers 403 ProjectId, the forwarder holds
the data and reports the value, the operator re-creates the project (once Sentry has freed the slug) and
updates the table, and the forwarder delivers what it held. Every span sent after the deletion reaches the new
project; none is lost or dropped. Periodic re-verification is set to 5 minutes, so only the report can heal.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sentryroute.demo.stack import Stack, running_stack
from sentryroute.routes import RoutesTable, parse_routes_table

REPO_CRDS = ("deploy/crds/sentryroute.yaml", "deploy/crds/kopf-peering.yaml")
OPERATOR_NS, ORG, TEAM, SERVICE = "sentryroute", "acme", "backend", "checkout-v2"
SPANS_PER_REQUEST = 5


def until(check: Callable[[], Any], *, stack: Stack, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_processes()
        result = check()
        if result:
            return result
        time.sleep(0.1)
    logs = {name: stack.log_path(name).read_text(errors="replace")[-3000:] for name in stack.processes}
    raise AssertionError(f"timed out waiting for {what}; logs: {logs}")


def table(stack: Stack) -> RoutesTable | None:
    cm = stack.kube.get("v1/configmaps", OPERATOR_NS, "sentryroute-routes")
    raw = ((cm or {}).get("data") or {}).get("routes.json")
    return parse_routes_table(raw) if raw else None


def routed_id(stack: Stack) -> str | None:
    t = table(stack)
    route = next((r for r in (t.routes if t else ()) if r.value == SERVICE), None)
    return t.projects[route.project].id if t is not None and route is not None else None


def metric(stack: Stack, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.admin_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


class Sender:
    """OTLP/JSON requests of SPANS_PER_REQUEST spans named `span-<n>`, one after another, until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.url = f"{stack.http_endpoint}/v1/traces"
        self.sent: list[str] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def send_one(self) -> None:
        with self.lock:
            start = len(self.sent)
        names = [f"span-{start + i}" for i in range(SPANS_PER_REQUEST)]
        spans = [
            {
                "traceId": f"{start + i + 1:032x}",
                "spanId": f"{start + i + 1:016x}",
                "name": name,
                "kind": 1,
                "startTimeUnixNano": str(time.time_ns()),
                "endTimeUnixNano": str(time.time_ns()),
            }
            for i, name in enumerate(names)
        ]
        body = {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
                    "scopeSpans": [{"scope": {"name": "healing-test"}, "spans": spans}],
                }
            ]
        }
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200, resp.status
            answer = json.loads(resp.read() or b"{}")
            assert not answer.get("partialSuccess", {}).get("rejectedSpans"), answer
        with self.lock:
            self.sent.extend(names)

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.05):
                self.send_one()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> Sender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.error is None, self.error

    def count(self) -> int:
        with self.lock:
            return len(self.sent)


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


def test_a_deleted_project_is_recreated_and_its_held_data_delivered(stack: Stack) -> None:
    sentry, kube = stack.sentry, stack.kube
    sentry.state.add_org(ORG)
    sentry.state.add_team(ORG, TEAM)
    token_file = stack.workdir / "token"
    token_file.write_text(sentry.state.add_token(scopes=["org:read", "project:read", "project:write"]))
    for crd in REPO_CRDS:
        kube.apply_file(crd)
    for namespace in (OPERATOR_NS, "shop"):
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "checkout", "labels": {"service.name": SERVICE}}}
    kube.apply({**pod, "spec": {"containers": [{"name": "app", "image": "app"}]}}, namespace="shop")
    route = {
        "apiVersion": "sentryroute.dev/v1alpha1",
        "kind": "SentryRoute",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"autoProvision": {"enabled": True, "team": TEAM}},
    }
    kube.apply(route, namespace="shop")

    kube_env = {"KUBECONFIG": str(kube.kubeconfig_path)}
    stack.start_process(
        "operator",
        ["operator", "--namespace", OPERATOR_NS, "--new-project-warmup", "1s", "--reverify-interval", "5m"],
        {**kube_env, "SENTRY_URL": sentry.url, "SENTRY_ORG_SLUG": ORG, "SENTRY_AUTH_TOKEN_FILE": str(token_file)},
    )
    stack.start_process(
        "forwarder",
        [
            "forwarder",
            *("--routes-configmap", f"{OPERATOR_NS}/sentryroute-routes"),
            *("--report-configmap", f"{OPERATOR_NS}/sentryroute-requests", "--report-interval", "200ms"),
            *("--otlp-http", f"127.0.0.1:{stack.http_port}", "--otlp-grpc", f"127.0.0.1:{stack.grpc_port}"),
            *("--admin", f"127.0.0.1:{stack.admin_port}", "--batch-timeout", "100ms"),
            *("--retry-initial", "100ms", "--retry-max", "1s"),
        ],
        kube_env,
    )
    first_id = until(lambda: routed_id(stack), stack=stack, what="the project created and routed")
    revision = table(stack).revision  # type: ignore[union-attr]

    def forwarder_has(rev: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{stack.admin_port}/metrics", timeout=2) as resp:
                return f'revision="{rev}"' in resp.read().decode()
        except OSError:
            return False

    until(lambda: forwarder_has(revision), stack=stack, what="the forwarder loaded the table")

    sender = Sender(stack).start()
    until(lambda: sentry.received.span_count(first_id) >= 50, stack=stack, what="data flowing to the project")

    # Deleted in Sentry: pending deletion first (ingest answers 403 ProjectId, the slug is still taken) ...
    sentry.state.delete_project(ORG, SERVICE)
    deleted_at = sender.count()

    def slug_reserved() -> bool:
        status = (kube.get("sentryroute.dev/v1alpha1/sentryroutes", "shop", "shop") or {}).get("status") or {}
        return any(
            e.get("value") == SERVICE and "not active" in e.get("message", "") for e in status.get("projects", ())
        )

    until(slug_reserved, stack=stack, what="the operator noticed from the forwarder's report (slug still held)")
    assert sender.count() > deleted_at + SPANS_PER_REQUEST  # data kept flowing meanwhile
    # ... then Sentry's deletion task frees the slug, and the project is re-created.
    sentry.state.finish_deletions(ORG)
    second_id = until(
        lambda: (p := sentry.state.project(ORG, SERVICE)) is not None and p.id, stack=stack, what="re-created"
    )
    assert second_id != first_id
    until(lambda: routed_id(stack) == second_id, stack=stack, what="the table routes the new project")
    until(lambda: sentry.received.span_count(second_id) > 0, stack=stack, what="data reaching the new project")
    sender.stop()

    sent = list(sender.sent)

    def delivered() -> set[str]:
        return {s.name for s in sentry.received.spans(first_id)} | {s.name for s in sentry.received.spans(second_id)}

    until(lambda: delivered() >= set(sent), stack=stack, what="every span delivered")
    to_new = {s.name for s in sentry.received.spans(second_id)}
    after_deletion = set(sent[deleted_at:])
    assert after_deletion <= to_new, sorted(after_deletion - to_new)[:10]
    assert metric(stack, "sentryroute_dropped_items_total") == 0
    assert sentry.state.project(ORG, SERVICE).id == second_id

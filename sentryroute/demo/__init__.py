"""`sentryroute demo`: the whole system on this machine — no cluster, no Sentry account — in under a minute.

An emulated Kubernetes API and a Sentry emulator run in threads; the real operator and forwarder run as
processes. The demo applies `examples/` (the four routing scenarios of Sentry's exporter docs), sends traces and
logs from several services with the OpenTelemetry SDK, and shows per project what arrived, and the routes table
the operator rendered. Exit code 0 only when every service's telemetry reached exactly its expected project.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
import urllib.request
from pathlib import Path

from sentryroute.demo.scenario import (
    EXISTING_PROJECTS,
    IDLE_PROJECTS,
    LOGS_PER_SERVICE,
    ORG,
    SERVICES,
    SPANS_PER_SERVICE,
    TEAM,
    TOKEN_SCOPES,
)
from sentryroute.demo.stack import OPERATOR_NAMESPACE, ROUTES_CONFIGMAP, ConfigMapMirror, Stack, running_stack
from sentryroute.options import add_option
from sentryroute.routes import RoutesTable, RoutesTableError, parse_routes_table

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser, "--examples", default=str(REPO_ROOT / "examples"), help="folder of SentryRoutes and pods", metavar="DIR"
    )
    add_option(
        parser, "--crds", default=str(REPO_ROOT / "deploy" / "crds"), help="folder of the CRD manifests", metavar="DIR"
    )
    add_option(parser, "--timeout", default="60", type=float, help="seconds to wait for each stage", metavar="SECONDS")
    add_option(parser, "--keep-running", action="store_true", help="keep everything running until Ctrl-C")


class Progress:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:5.1f}s] {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    say = Progress()
    examples, crds = Path(args.examples), Path(args.crds)
    if not examples.is_dir() or not crds.is_dir():
        print(f"demo: needs the repository's examples/ and deploy/crds/ (looked in {examples} and {crds})")
        return 2
    with running_stack() as stack:
        try:
            return _run_demo(stack, say, examples=examples, crds=crds, timeout=args.timeout, keep=args.keep_running)
        except (RuntimeError, TimeoutError) as exc:
            say(f"FAILED: {exc}")
            say(f"logs: {stack.log_path('operator')}, {stack.log_path('forwarder')} (removed on exit)")
            for name in stack.processes:
                tail = stack.log_path(name).read_text(errors="replace").splitlines()[-10:]
                print(f"--- last lines of the {name} log ---\n" + "\n".join(tail))
            return 1


def _run_demo(stack: Stack, say: Progress, *, examples: Path, crds: Path, timeout: float, keep: bool) -> int:
    sentry, kube = stack.sentry, stack.kube
    page = f"{sentry.url}/_emulator/"
    say(f"Sentry emulator at {sentry.url} (page: {page}" + (")" if keep else " — gone when the demo exits)"))
    sentry.state.add_org(ORG)
    sentry.state.add_team(ORG, TEAM)
    for slug in EXISTING_PROJECTS:
        sentry.state.add_project(ORG, TEAM, slug)
    token_file = stack.workdir / "sentry-token"
    token_file.write_text(sentry.state.add_token(scopes=list(TOKEN_SCOPES)), encoding="utf-8")
    say(f"  org {ORG!r}, team {TEAM!r}, {len(EXISTING_PROJECTS)} existing projects, an org token (file, not logged)")

    say(f"Kubernetes API emulator at {kube.url}")
    for crd in sorted(crds.glob("*.yaml")):
        kube.apply_file(crd)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    routes = 0
    for manifest in sorted(examples.glob("*.yaml")):
        applied = kube.apply_file(manifest)
        routes += sum(1 for doc in applied if doc.get("kind") == "SentryRoute")
        say(f"  applied {manifest.name}")
    say(f"  {routes} SentryRoutes, {len(kube.objects('v1/pods'))} pods")

    kube_env = {"KUBECONFIG": str(kube.kubeconfig_path)}
    stack.start_process(
        "operator",
        [
            *("operator", "--namespace", OPERATOR_NAMESPACE, "--new-project-warmup", "1s"),
            *("--reverify-interval", "1m", "--metrics", f"127.0.0.1:{stack.operator_metrics_port}"),
        ],
        {**kube_env, "SENTRY_URL": sentry.url, "SENTRY_ORG_SLUG": ORG, "SENTRY_AUTH_TOKEN_FILE": str(token_file)},
    )
    say("operator started (kopf): provisioning projects and rendering the routes table")
    routes_dir = stack.workdir / "routes"
    with ConfigMapMirror(kube, routes_dir) as mirror:
        stack.start_process(
            "forwarder",
            [
                "forwarder",
                *("--routes", str(routes_dir / "routes.json"), "--routes-poll-interval", "200ms"),
                *("--otlp-http", f"127.0.0.1:{stack.http_port}", "--otlp-grpc", f"127.0.0.1:{stack.grpc_port}"),
                *("--admin", f"127.0.0.1:{stack.admin_port}", "--batch-timeout", "100ms"),
            ],
            kube_env,
        )
        say(f"forwarder started: OTLP/HTTP {stack.http_endpoint}, OTLP/gRPC {stack.grpc_endpoint}")
        table = _wait_for_table(stack, mirror, say, timeout=timeout)
        _wait_for_forwarder(stack, table.revision, timeout=timeout)
        say(f"forwarder loaded revision {table.revision[:19]}…")

        expected = [s for s in SERVICES if s.expected_project]
        say(f"sending {SPANS_PER_SERVICE} spans and {LOGS_PER_SERVICE} logs from each of {len(SERVICES)} services")
        _send_all(stack)
        ok = _wait_for_delivery(stack, timeout=timeout)
        say("delivered" if ok else "NOT everything arrived in time")
        _print_results(stack)
        _print_table(table)
        _print_routes_status(stack)
        if keep:
            say(f"running; send OTLP to {stack.http_endpoint} or {stack.grpc_endpoint}; Ctrl-C to stop")
            say(
                f"Sentry emulator page: {sentry.url}/_emulator/ — metrics: forwarder "
                f"http://127.0.0.1:{stack.admin_port}/metrics, operator http://127.0.0.1:{stack.operator_metrics_port}/metrics"
            )
            try:
                while True:
                    time.sleep(1)
                    stack.check_processes()
            except KeyboardInterrupt:
                pass
        if not keep:
            say("the emulators, operator and forwarder stop now; `sentryroute demo --keep-running` keeps them up")
        say(f"{'OK' if ok else 'FAILED'}: {len(expected)} services routed to their projects")
        return 0 if ok else 1


def _wait_for_table(stack: Stack, mirror: ConfigMapMirror, say: Progress, *, timeout: float) -> RoutesTable:
    wanted = {f"{ORG}/{s.expected_project}" for s in SERVICES if s.expected_project}
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        stack.check_processes()
        if mirror.content:
            try:
                table = parse_routes_table(mirror.content)
            except RoutesTableError as exc:
                raise RuntimeError(f"the operator wrote a table the forwarder rejects: {exc}") from None
            missing = wanted - set(table.projects)
            status = f"{len(table.routes)} routes, {len(table.projects)} projects, {len(table.pending)} pending"
            if status != last:
                say(f"  routes table {table.revision[:19]}…: {status}")
                last = status
            if not missing and not table.pending:
                return table
        time.sleep(0.2)
    raise TimeoutError(f"no complete routes table in {OPERATOR_NAMESPACE}/{ROUTES_CONFIGMAP} after {timeout:.0f}s")


def _wait_for_forwarder(stack: Stack, revision: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_processes()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{stack.admin_port}/metrics", timeout=2) as resp:
                if f'revision="{revision}"' in resp.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the forwarder did not load revision {revision} within {timeout:.0f}s")


def _send_all(stack: Stack, *, spans: int = SPANS_PER_SERVICE, logs: int = LOGS_PER_SERVICE) -> None:
    """Every demo service sends `spans` spans and `logs` log records, all at once (one thread each)."""
    from sentryroute.demo.telemetry import send  # the SDK is imported only when needed

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        futures = [
            pool.submit(
                send,
                service,
                http_endpoint=stack.http_endpoint,
                grpc_endpoint=stack.grpc_endpoint,
                spans=spans,
                logs=logs,
            )
            for service in SERVICES
        ]
        for future in futures:
            future.result()


def _received(stack: Stack) -> dict[str, tuple[int, int, set[str]]]:
    """slug → (spans, logs, service names) for every project of the org."""
    result = {}
    for project in stack.sentry.state.projects(ORG):
        spans = stack.sentry.received.spans(project.id)
        logs = stack.sentry.received.logs(project.id)
        names = {s.service_name for s in spans} | {lg.service_name for lg in logs}
        result[project.slug] = (len(spans), len(logs), names)
    return result


def _wait_for_delivery(stack: Stack, *, timeout: float) -> bool:
    want: dict[str, tuple[int, int, set[str]]] = {}
    for s in SERVICES:
        if s.expected_project:
            spans, logs, names = want.get(s.expected_project, (0, 0, set()))
            want[s.expected_project] = (spans + SPANS_PER_SERVICE, logs + LOGS_PER_SERVICE, names | {s.name})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_processes()
        got = _received(stack)
        if all(got.get(slug) == counts for slug, counts in want.items()) and all(
            got[slug] == (0, 0, set()) for slug in got if slug not in want
        ):
            return True
        time.sleep(0.3)
    return False


def _print_results(stack: Stack) -> None:
    by_project = {**IDLE_PROJECTS, **{s.expected_project: s.scenario for s in SERVICES if s.expected_project}}
    print()
    print(f"{'Sentry project':<28} {'spans':>6} {'logs':>5}  {'services':<34} scenario")
    print("-" * 100)
    for slug, (spans, logs, names) in sorted(_received(stack).items()):
        print(f"{slug:<28} {spans:>6} {logs:>5}  {', '.join(sorted(names)) or '-':<34} {by_project.get(slug, '')}")
    dropped_spans = _metric_sum(stack, "sentryroute_dropped_items_total", signal="traces", reason="unrouted")
    dropped_logs = _metric_sum(stack, "sentryroute_dropped_items_total", signal="logs", reason="unrouted")
    stray = ", ".join(s.name for s in SERVICES if s.expected_project is None)
    print(
        f"{'(dropped, unrouted)':<28} {dropped_spans:>6.0f} {dropped_logs:>5.0f}  {stray:<34} "
        "counted in sentryroute_dropped_items_total"
    )
    print()


def _metric_sum(stack: Stack, name: str, **labels: str) -> float:
    """Sum of the forwarder's `name` samples that carry all of `labels`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.admin_port}/metrics", timeout=2) as resp:
        lines = resp.read().decode().splitlines()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(name + "{") and all(label in line for label in wanted)
    )


def _print_table(table: RoutesTable) -> None:
    where = f"ConfigMap {OPERATOR_NAMESPACE}/{ROUTES_CONFIGMAP}, {table.revision[:19]}…"
    print(f"Routes table rendered by the operator ({where}):")
    for route in table.routes:
        ns = f" (namespace {route.namespace})" if route.namespace else ""
        print(f"  {route.attribute}={route.value}{ns} → {route.project}")
    for fallback in table.fallbacks:
        print(f"  fallback{' for namespace ' + fallback.namespace if fallback.namespace else ''} → {fallback.project}")
    print(f"  anything else: {table.unrouted}")
    print()


def _print_routes_status(stack: Stack) -> None:
    print("SentryRoutes:")
    for route in stack.kube.objects("sentryroute.dev/v1alpha1/sentryroutes"):
        meta, status = route["metadata"], route.get("status") or {}
        ready: dict[str, str] = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        projects = ", ".join(
            f"{p['value']}→{p['slug']}{' (created)' if p.get('created') else ''}" for p in status.get("projects", [])
        )
        print(f"  {meta['namespace']}/{meta['name']}: Ready={ready.get('status', '?')} {projects}")
    print()


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(examples="examples", crds="deploy/crds", timeout=60.0, keep_running=False)))

"""Render the README's picture of the Grafana dashboard from a demo run: no cluster, no Prometheus, no Grafana.

    make dashboard-picture            # = pip install -e '.[picture]' && python scripts/dashboard_picture.py

Runs the demo (emulated Kubernetes API and Sentry, the real operator and forwarder as processes), then keeps
sending telemetry for `--seconds` while Sentry misbehaves on a schedule — a rate limit on one project, 503s on
another, Web API 429s while the operator creates a project for a new pod — and samples both programs' /metrics
every second. The dashboard's own queries (charts/sentryroute/dashboards/sentryroute.json) are evaluated on those
samples (sentryroute/demo/dashboard.py) and its main panels drawn with matplotlib into docs/dashboard.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "charts" / "sentryroute" / "dashboards" / "sentryroute.json"
PANELS = (
    "Spans and logs in",
    "Exported per project",
    "Dropped items by reason",
    "Upstream answers by status",
    "Rate-limited projects: seconds until the limit ends",
    "Queued items per project",
    "Queued and held bytes against the bound",
    "Upstream latency",
    "Projects created and adopted",
    "Sentry Web API answers by status",
    "CPU",
    "Memory (RSS)",
)
NEW_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "checkout-0", "namespace": "shop-dev", "labels": {"app.kubernetes.io/name": "checkout"}},
    "spec": {"containers": [{"name": "app", "image": "example/checkout:1.0"}]},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send telemetry after the demo")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png", help="PNG to write")
    parser.add_argument("--samples", type=Path, help="JSON of the scrapes: written after a run, read instead of one")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401 - checked before a minute of demo, not after
    except ModuleNotFoundError:
        print("needs matplotlib: pip install -e '.[picture]' (or make dashboard-picture)", file=sys.stderr)
        return 2

    from sentryroute.demo import Progress, _run_demo
    from sentryroute.demo.dashboard import Sampler, Samples
    from sentryroute.demo.stack import running_stack

    say = Progress()
    if args.samples is not None and args.samples.exists():
        say(f"drawing {args.out} from {args.samples}")
        _draw(Samples.from_json(json.loads(args.samples.read_text())), args.out)
        return 0
    with running_stack() as stack:
        targets = {
            "forwarder": f"http://127.0.0.1:{stack.admin_port}/metrics",
            "operator": f"http://127.0.0.1:{stack.operator_metrics_port}/metrics",
        }
        with Sampler(targets, interval=1.0) as sampler:
            status = _run_demo(
                stack, say, examples=REPO / "examples", crds=REPO / "deploy" / "crds", timeout=90, keep=False
            )
            if status != 0:
                return status
            _misbehave_while_sending(stack, say, seconds=args.seconds)
            say("letting held data drain")
            time.sleep(15)
        samples: Samples = sampler.samples
    if args.samples is not None:
        args.samples.write_text(json.dumps(samples.to_json()))
    say(f"{len(samples.times)} scrapes; drawing {args.out}")
    _draw(samples, args.out)
    return 0


def _misbehave_while_sending(stack: object, say: Callable[[str], None], *, seconds: float) -> None:
    from sentryroute.demo import _send_all
    from sentryroute.demo.scenario import ORG
    from sentryroute.demo.stack import Stack

    assert isinstance(stack, Stack)
    sentry = stack.sentry
    project_id = {p.slug: p.id for p in sentry.state.projects(ORG)}

    def new_pod_while_the_web_api_limits() -> None:
        sentry.faults.api_rate_limit(".*", count=2, reset_in=2)
        stack.kube.apply(NEW_POD)

    schedule: list[tuple[float, str, Callable[[], None]]] = [
        (
            0.2 * seconds,
            "Sentry rate-limits payments-api for 20 s",
            lambda: sentry.faults.rate_limit(project_id["payments-api"], seconds=20),
        ),
        (
            0.45 * seconds,
            "ecommerce-orders answers 503 for 12 s",
            lambda: sentry.faults.fail(project_id["ecommerce-orders"], status=503, seconds=12),
        ),
        (
            0.6 * seconds,
            "a new pod in shop-dev; the Web API answers 429 twice while the operator creates its project",
            new_pod_while_the_web_api_limits,
        ),
    ]
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        while schedule and schedule[0][0] <= elapsed:
            _at, what, act = schedule.pop(0)
            say(what)
            act()
        _send_all(stack, spans=40, logs=10)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started - elapsed)))


def _draw(samples: object, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sentryroute.demo.dashboard import Samples, panel_queries, series

    assert isinstance(samples, Samples)
    panels = dict(panel_queries(json.loads(DASHBOARD.read_text())))
    units = {
        p["title"]: p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        for p in json.loads(DASHBOARD.read_text())["panels"]
    }
    plt.style.use("dark_background")
    columns, rows = 3, math.ceil(len(PANELS) / 3)
    figure, axes = plt.subplots(rows, columns, figsize=(18, 4.0 * rows), dpi=80, facecolor="#111217")
    for ax, title in zip(axes.flat, PANELS, strict=True):
        ax.set_facecolor("#181b1f")
        scale, label = _unit(units[title])
        for query, legend_format in panels[title]:
            for name, (times, values) in sorted(series(query, legend_format, samples).items()):
                ax.plot(times, [v * scale for v in values], linewidth=1.4, label=name)
        if title.startswith("Queued and held bytes"):
            ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlim(0, samples.times[-1] if samples.times else 1)
        ax.set_title(title, fontsize=12, loc="left", color="#d8d9da")
        ax.set_ylabel(label, fontsize=9)
        ax.set_xlabel("seconds into the run", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(color="#2c3235", linewidth=0.6)
        handles, names = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7, ncol=2 if len(names) > 6 else 1, loc="upper left", framealpha=0.6)
    figure.suptitle(
        "sentryroute dashboard (charts/sentryroute/dashboards/sentryroute.json), evaluated on a demo run: "
        "a rate limit, 503s and Web API 429s injected",
        fontsize=13,
        color="#d8d9da",
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, facecolor=figure.get_facecolor())


def _unit(unit: str) -> tuple[float, str]:
    return {
        "bytes": (1 / 2**20, "MiB"),
        "percentunit": (100.0, "% of a core"),
        "cps": (1.0, "items/s"),
        "reqps": (1.0, "requests/s"),
        "s": (1.0, "seconds"),
    }.get(unit, (1.0, ""))


if __name__ == "__main__":
    sys.exit(main())

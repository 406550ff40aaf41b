"""Per-project metric series: dict entries (or read when scraped), not prometheus_client child objects.

With 1,000 projects the four per-project metrics made 4,000 children of ~750 bytes each (~3 MB of a ~130 MB
peak on the 1,000-services benchmark shape).
"""

from __future__ import annotations

import tracemalloc

import pytest
from prometheus_client import generate_latest
from sentryroute_forwarder.metrics import ForwarderMetrics

PROJECTS = 1000


def exposition(metrics: ForwarderMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_a_series_counter_exposes_counters_and_forgets_series() -> None:
    metrics = ForwarderMetrics()
    metrics.exported_items.inc(("traces", "acme/checkout"), 40)
    metrics.exported_items.inc(("traces", "acme/checkout"), 2)
    metrics.export_requests.inc(("acme/checkout", "delivered"))
    text = exposition(metrics)
    assert "# TYPE sentryroute_exported_items_total counter" in text
    assert 'sentryroute_exported_items_total{project="acme/checkout",signal="traces"} 42.0' in text
    assert 'sentryroute_export_requests_total{outcome="delivered",project="acme/checkout"} 1.0' in text
    with pytest.raises(ValueError, match="only go up"):
        metrics.exported_items.inc(("traces", "acme/checkout"), -1)
    metrics.exported_items.remove("traces", "acme/checkout")
    assert "sentryroute_exported_items_total{" not in exposition(metrics)
    with pytest.raises(KeyError):
        metrics.exported_items.remove("traces", "acme/checkout")


def test_a_scraped_gauge_reads_its_series_when_scraped() -> None:
    metrics = ForwarderMetrics()
    queued = {"acme/a": 3}
    metrics.queued_items.source = lambda: [((project,), items) for project, items in queued.items()]
    assert 'sentryroute_queued_items{project="acme/a"} 3.0' in exposition(metrics)
    queued["acme/a"] = 5
    assert 'sentryroute_queued_items{project="acme/a"} 5.0' in exposition(metrics)


def test_a_thousand_projects_series_take_well_under_a_megabyte() -> None:
    metrics = ForwarderMetrics()
    names = [f"acme/service-{n:04d}" for n in range(PROJECTS)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for project in names:  # what one delivered batch per project leaves behind
            metrics.exported_items.inc(("traces", project), 50)
            metrics.export_requests.inc((project, "delivered"))
            metrics.export_responses.inc((project, "200"))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 600 * 1024, f"{grown} bytes for {PROJECTS} projects' series"  # prometheus_client children: ~1.7 MB

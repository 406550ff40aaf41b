"""Per-project state is forgotten when a project leaves the routes table — once nothing is queued for it."""

from __future__ import annotations

from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.store import QueueKey

from tests.forwarder.queue_support import PipelineFactory, SentryWorld, sample, trace_parts
from tests.forwarder.support import wait_until


def series(metrics, project: str) -> list[str]:
    """Names of the metric series that carry `project` as a label."""
    return sorted(
        f"{s.name}{s.labels}"
        for family in metrics.registry.collect()
        for s in family.samples
        if s.labels.get("project") == project
    )


async def test_a_project_that_left_the_table_is_forgotten(world: SentryWorld, make_pipeline: PipelineFactory):
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    pipeline, metrics = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc"))
    received = world.emu.received
    await wait_until(lambda: len(received.spans(a)) == 3 and len(received.spans(b)) == 3, what="both delivered")
    await wait_until(lambda: sample(metrics, "sentryroute_queued_items", project="acme/payments") == 0, what="empty")
    assert series(metrics, "acme/payments")  # queued_items, exported_items, export_requests

    pipeline.apply_table(world.table({"checkout-svc": "checkout"}))
    assert series(metrics, "acme/payments") == []
    assert QueueKey.for_project(Signal.TRACES, "acme/payments") not in pipeline._states.lanes
    assert series(metrics, "acme/checkout")  # the project still routed keeps its series


async def test_a_project_whose_data_is_in_flight_is_forgotten_after(world: SentryWorld, make_pipeline: PipelineFactory):
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.delay(b, seconds=1.0)
    pipeline, metrics = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "payments-svc"))
    await wait_until(lambda: pipeline.stats().in_flight == 1, what="the payments batch in flight")
    # payments-svc now goes to checkout: the batch in flight finishes, anything left is re-routed.
    pipeline.apply_table(world.table({"checkout-svc": "checkout", "payments-svc": "checkout"}))
    assert QueueKey.for_project(Signal.TRACES, "acme/payments") in pipeline._states.lanes  # still sending
    await wait_until(lambda: len(world.emu.received.spans(b)) == 3, what="the batch in flight delivered")
    await wait_until(lambda: series(metrics, "acme/payments") == [], what="payments forgotten")
    pipeline.offer(trace_parts(world.table({"checkout-svc": "checkout", "payments-svc": "checkout"}), "payments-svc"))
    await wait_until(lambda: len(world.emu.received.spans(a)) == 3, what="new payments data at checkout")
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="unrouted") == 0

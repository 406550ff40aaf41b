"""The pipeline's own contracts: the global bound, table changes under queued data, and shutdown."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sentryroute_forwarder.model import Overloaded, Unavailable

from tests.forwarder.queue_support import PipelineFactory, SentryWorld, log_parts, sample, trace_parts
from tests.forwarder.support import wait_until


async def test_global_bound_turns_has_room_false(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    world.emu.faults.delay(a, seconds=1.0)  # slow, not failing: nothing is trimmed, data piles up
    pipeline, metrics = await make_pipeline(table, max_bytes=20_000, batch_max_items=3)
    while pipeline.has_room(2_000):
        pipeline.offer(trace_parts(table, "checkout-svc"))
    assert pipeline.stats().bytes > 18_000
    assert sample(metrics, "sentryroute_queued_bytes") == pipeline.stats().bytes
    assert sample(metrics, "sentryroute_queued_items", project="acme/checkout") == pipeline.stats().items
    world.emu.faults.clear()
    await wait_until(lambda: pipeline.has_room(2_000) and pipeline.stats().items == 0, what="room again")
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="upstream_failing") == 0


async def test_key_rotation_applies_to_queued_data(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    world.emu.faults.rate_limit(a, seconds=1.0, categories="span")
    pipeline, _ = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "rate_limited", what="a 429")
    # While the data waits, the key is rotated: the old one no longer works.
    old_key = world.keys["checkout"]
    world.keys["checkout"] = world.emu.state.add_key("acme", "checkout", name="rotated").public
    world.emu.state.set_key_active(old_key, False)
    pipeline.apply_table(world.table({"checkout-svc": "checkout"}))
    await wait_until(lambda: len(world.emu.received.spans(a)) == 3, what="delivery with the new key")
    delivered = [r for r in world.emu.received.requests(a) if r.status == 202]
    assert [r.public_key for r in delivered] == [world.keys["checkout"]]


async def test_data_of_a_project_that_left_the_table_is_rerouted(
    world: SentryWorld, make_pipeline: PipelineFactory
) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout"})
    world.emu.faults.rate_limit(a, seconds=30, categories="span")
    pipeline, _ = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "rate_limited", what="a 429")
    pipeline.offer(trace_parts(table, "checkout-svc", tag="more-"))
    pipeline.apply_table(world.table({"checkout-svc": "payments"}))
    await wait_until(lambda: len(world.emu.received.spans(b)) == 6, what="re-routed by stored value")
    assert world.emu.received.spans(a) == []


async def test_close_flushes_and_reports_what_it_could_not_deliver(
    world: SentryWorld, make_pipeline: PipelineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"}, pending=["new-svc"])
    world.emu.faults.rate_limit(b, seconds=60, categories="span")
    pipeline, metrics = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "payments-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/payments") == "rate_limited", what="a 429")
    pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc", "new-svc", tag="last-"))
    pipeline.offer(log_parts(table, "checkout-svc"))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        undelivered = await pipeline.close(5.0)
    assert time.monotonic() - started < 2.0  # a 60 s limit is not waited for
    assert undelivered == 6 + 3  # payments' two requests, the pending value's one
    assert len(world.emu.received.spans(a)) == 3 and len(world.emu.received.logs(a)) == 3
    assert "'acme/payments'" in caplog.text and "6 items" in caplog.text
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="shutdown") == 9
    assert not pipeline.has_room(1)
    with pytest.raises(Unavailable):  # the client is told to send it elsewhere or later: nothing is dropped
        pipeline.offer(trace_parts(table, "checkout-svc"))
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="shutdown") == 9


async def test_close_is_bounded_by_its_timeout(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    world.emu.faults.delay(a, seconds=1.5)
    pipeline, _ = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().in_flight == 1, what="a request the emulator holds")
    started = time.monotonic()
    assert await pipeline.close(0.5) == 3
    assert time.monotonic() - started < 1.5


async def test_refusals_say_when_there_will_be_room(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.rate_limit(a, seconds=30, categories="span")  # Sentry: no spans for checkout for 30 s
    pipeline, metrics = await make_pipeline(table, max_bytes=20_000)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "rate_limited", what="a 429")
    with pytest.raises(Overloaded) as refused:
        while True:  # rate-limited data fills its half of the bound
            pipeline.offer(trace_parts(table, "checkout-svc", spans=10))
    assert refused.value.retry_after is not None and 25 < refused.value.retry_after <= 30  # the limit's end
    pipeline.offer(trace_parts(table, "payments-svc"))  # healthy data is still taken
    await wait_until(lambda: len(world.emu.received.spans(b)) == 3, what="payments delivered")
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="rate_limited") == 0


async def test_on_disk_a_failing_project_never_costs_healthy_traffic_room(
    world: SentryWorld, make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.fail(a, status=503)  # checkout is down for the whole test
    bound = 512 * 1024
    pipeline, metrics = await make_pipeline(table, queue_dir=tmp_path / "queue", max_disk_bytes=bound)
    stuck = refused = 0
    # Healthy traffic worth 8 times the bound, interleaved with the failing project's until its half is full:
    # segments pinned by checkout's records must be compacted, or payments would hit the bound.
    for i in range(60):
        try:
            pipeline.offer(trace_parts(table, "checkout-svc", spans=60, tag=f"c{i}-"))
            stuck += 60
        except Overloaded:
            refused += 1
        assert pipeline.has_room(2_000), f"healthy traffic refused after {i} rounds"
        pipeline.offer(trace_parts(table, "payments-svc", spans=400, tag=f"p{i}-"))
        await wait_until(lambda i=i: len(world.emu.received.spans(b)) == 400 * (i + 1), what="payments delivered")
    assert refused > 0 and stuck > 0
    assert sample(metrics, "sentryroute_queue_disk_bytes") <= bound
    world.emu.faults.clear()
    await wait_until(lambda: len(world.emu.received.spans(a)) == stuck, what="checkout's accepted data")
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="upstream_failing") == 0

"""Upstream failures against the emulator: 5xx and timeouts are retried without loss, 413 halves the batch,
other 4xx drop, and a failing project never slows the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Overloaded

from sentryroute.emulator import EmulatorConfig, ReceivedSpan, SentryEmulator
from tests.forwarder.queue_support import PipelineFactory, SentryWorld, log_parts, sample, trace_parts
from tests.forwarder.support import wait_until


async def test_5xx_then_recovery_loses_nothing(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    world.emu.faults.fail(a, status=503, count=4)
    pipeline, metrics = await make_pipeline(table)
    for i in range(10):
        pipeline.offer(trace_parts(table, "checkout-svc", tag=f"r{i}-"))
        pipeline.offer(log_parts(table, "checkout-svc", tag=f"r{i}-"))
    received = world.emu.received
    await wait_until(lambda: len(received.spans(a)) == 30 and len(received.logs(a)) == 30, what="everything")
    assert [r.status for r in received.requests(a)].count(503) == 4
    assert len({s.name for s in received.spans(a)}) == 30  # no duplicates: a 2xx batch is never sent again
    assert sample(metrics, "sentryroute_export_requests_total", project="acme/checkout", outcome="retry") == 4
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="upstream_failing") == 0


async def test_timeouts_are_retried(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    world.emu.faults.delay(a, seconds=1.0)
    pipeline, _ = await make_pipeline(table, export_timeout=0.3)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "backing_off", what="a timeout")
    world.emu.faults.clear()
    await wait_until(lambda: len(world.emu.received.spans(a)) >= 3, what="delivery after the timeouts")
    # The emulator records spans before it answers: the lane is active once that answer is in.
    await wait_until(lambda: pipeline.stats().states["acme/checkout"] == "active", what="the lane active again")


async def test_a_failing_project_does_not_slow_the_others(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.delay(a, seconds=1.0)  # checkout hangs: every request times out
    pipeline, metrics = await make_pipeline(table, export_timeout=0.3, batch_timeout=0.02)
    received = world.emu.received
    latencies: list[float] = []
    started = time.monotonic()
    # Scaled "minutes": keep sending until checkout has failed for 3 s and several times.
    while time.monotonic() - started < 3.0 or retries(metrics) < 3:
        sent = time.monotonic()
        pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc", tag=f"r{len(latencies)}-"))
        await wait_until(spans_reach(received.spans, b, 3 * (len(latencies) + 1)), what="payments delivery")
        latencies.append(time.monotonic() - sent)
        await asyncio.sleep(0.1)
    # Batches wait 20 ms; a project sharing checkout's fate would wait out its timeouts and back-offs too.
    assert max(latencies) < 1.0, latencies
    assert received.spans(a) == []
    world.emu.faults.clear()
    await wait_until(lambda: len(received.spans(a)) == 3 * len(latencies), what="checkout catches up, nothing lost")


def spans_reach(spans: Callable[[str], list[ReceivedSpan]], project: str, count: int) -> Callable[[], bool]:
    return lambda: len(spans(project)) == count


def retries(metrics: ForwarderMetrics) -> float:
    return sample(metrics, "sentryroute_export_requests_total", project="acme/checkout", outcome="retry")


async def test_413_halves_down_to_one_resource(make_pipeline: PipelineFactory) -> None:
    async with SentryEmulator(EmulatorConfig(body_limit=3000)) as emu:
        world = SentryWorld(emu)
        a = world.project("checkout")
        table = world.table({"checkout-svc": "checkout", "big-svc": "checkout"})
        pipeline, metrics = await make_pipeline(table, batch_timeout=0.2)
        # One part of 12 resources (~9 KB): too large until halved by resources, twice (~2.3 KB pieces).
        pipeline.offer(trace_parts(table, "checkout-svc", spans=8, resources=12))
        # Several small parts (~400 B each): a batch of all of them is too large; halving by records fixes it.
        for i in range(6):
            pipeline.offer(trace_parts(table, "checkout-svc", spans=4, tag=f"small{i}-"))
        # One resource over the limit on its own (~3.4 KB): dropped only once it is alone.
        pipeline.offer(trace_parts(table, "big-svc", spans=40))
        await wait_until(lambda: len(emu.received.spans(a)) == 96 + 24, what="everything that fits")
        await wait_until(
            lambda: sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="too_large") == 40,
            what="the oversized resource dropped",
        )
        statuses = [r.status for r in emu.received.requests(a)]
        assert 413 in statuses
        assert statuses.count(202) >= 4  # 9 KB of resources cannot pass in fewer pieces of at most 3000 bytes
        assert len({s.name for s in emu.received.spans(a)}) == 120
        await wait_until(lambda: pipeline.stats().items == 0, what="an empty queue")


async def test_other_4xx_drop_and_count(make_pipeline: PipelineFactory) -> None:
    async with SentryEmulator(EmulatorConfig()) as emu:
        world = SentryWorld(emu)
        world.project("checkout")
        table = world.table({"checkout-svc": "checkout"})
        broken = table.projects["acme/checkout"].model_copy(
            update={"tracesUrl": table.projects["acme/checkout"].tracesUrl.replace("/api/", "/api/x")}
        )
        table = table.model_copy(update={"projects": {"acme/checkout": broken}})
        pipeline, metrics = await make_pipeline(table)
        pipeline.offer(trace_parts(table, "checkout-svc"))
        await wait_until(
            lambda: sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="rejected_400") == 3,
            what="a rejected batch",
        )
        assert pipeline.stats().items == 0


async def test_a_failing_queue_keeps_at_most_max_hold(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.fail(a, status=503)
    pipeline, metrics = await make_pipeline(table, max_hold=0.5)
    for i in range(3):
        pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc", tag=f"r{i}-"))
    await wait_until(
        lambda: sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="upstream_failing") == 9,
        what="failing data aged out",
    )
    assert len(world.emu.received.spans(b)) == 9
    await wait_until(lambda: pipeline.stats().items == 0, what="an empty queue")
    assert pipeline.stats().states["acme/checkout"] == "backing_off"


async def test_a_fixed_endpoint_is_tried_at_once(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    wrong = table.projects["acme/checkout"].model_copy(update={"tracesUrl": "http://127.0.0.1:9/api/1/"})
    pipeline, _ = await make_pipeline(
        table.model_copy(update={"projects": {"acme/checkout": wrong}}), retry_initial=60.0, retry_max=60.0
    )
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "backing_off", what="a failure")
    pipeline.apply_table(table)  # the operator fixes the URL: no waiting out a 60 s back-off
    await wait_until(lambda: len(world.emu.received.spans(a)) == 3, within=5.0, what="delivery")


async def test_a_hanging_project_is_refused_past_half_the_bound_while_its_retry_is_in_flight(
    world: SentryWorld, make_pipeline: PipelineFactory
) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.delay(a, seconds=1.5)  # checkout hangs: every request times out
    pipeline, metrics = await make_pipeline(
        table, max_bytes=20_000, export_timeout=0.3, retry_initial=0.05, retry_max=0.05
    )
    pipeline.offer(trace_parts(table, "checkout-svc", tag="first-"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "backing_off", what="a timeout")
    await wait_until(lambda: pipeline.stats().in_flight == 1, what="the retry in flight")
    # Offered while the retry hangs (no await: the lane cannot move meanwhile), far more than the bound.
    accepted, refused = ["first-"], 0
    for i in range(60):
        assert pipeline.has_room(2_000), f"one hanging project filled the global bound after {i} requests"
        try:
            pipeline.offer(trace_parts(table, "checkout-svc", spans=10, tag=f"r{i}-"))
            accepted.append(f"r{i}-")
        except Overloaded:
            refused += 1
    assert refused > 0 and pipeline.stats().bytes <= 20_000 // 2
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="upstream_failing") == 0
    pipeline.offer(trace_parts(table, "payments-svc"))  # healthy data is not refused, and flows
    await wait_until(lambda: len(world.emu.received.spans(b)) == 3, what="payments flows")
    # Once checkout answers, everything it was accepted for is delivered: nothing was dropped to make room.
    world.emu.faults.clear()
    expected = 3 + 10 * (len(accepted) - 1)
    await wait_until(lambda: len({s.name for s in world.emu.received.spans(a)}) == expected, what="all accepted data")


async def test_400_bisects_to_the_undecodable_resource(make_pipeline: PipelineFactory) -> None:
    """Defence behind intake validation: a record Sentry cannot decode that got into a batch anyway is isolated
    by halving (a strict upstream answers 400 for the whole batch) and dropped alone; the rest is delivered."""
    async with SentryEmulator(EmulatorConfig(reject_undecodable=True)) as emu:
        world = SentryWorld(emu)
        a = world.project("checkout")
        table = world.table({"checkout-svc": "checkout"})
        pipeline, metrics = await make_pipeline(table, batch_timeout=0.2)
        for i in range(3):
            pipeline.offer(trace_parts(table, "checkout-svc", spans=2, resources=3, tag=f"before{i}-"))
        # A resource whose span claims a 127-byte trace_id that is not there (the framing around it intact), in
        # a part of its own and inside a part with good resources (what a receiver without validation queued).
        part = trace_parts(table, "checkout-svc", spans=1)[0]
        corrupt = bytearray(part.payload)
        corrupt[corrupt.index(b"\x0a\x10\x01\x01") + 1] = 0x7F  # the span's trace_id field: tag, length 16
        mixed = trace_parts(table, "checkout-svc", spans=2, resources=2, tag="mixed-")[0]
        pipeline.offer([replace(part, payload=bytes(corrupt))])
        pipeline.offer([replace(mixed, payload=mixed.payload + bytes(corrupt), items=mixed.items + 1)])
        for i in range(3):
            pipeline.offer(trace_parts(table, "checkout-svc", spans=2, resources=3, tag=f"after{i}-"))
        expected = 6 * 6 + 4
        await wait_until(lambda: len(emu.received.spans(a)) == expected, what="every good span")
        await wait_until(
            lambda: sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="rejected_400") == 2,
            what="the two corrupt resources dropped",
        )
        assert len({s.name for s in emu.received.spans(a)}) == expected  # each delivered once
        assert 400 in [r.status for r in emu.received.requests(a)]
        await wait_until(lambda: pipeline.stats().items == 0, what="an empty queue")

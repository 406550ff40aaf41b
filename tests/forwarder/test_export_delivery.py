"""Queued data reaches the right Sentry projects (the emulator), batched per project across requests."""

from __future__ import annotations

from tests.forwarder.queue_support import PipelineFactory, SentryWorld, log_parts, sample, trace_parts
from tests.forwarder.support import wait_until


async def test_batches_per_project_across_requests(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    pipeline, metrics = await make_pipeline(table, batch_timeout=0.3)
    for i in range(20):
        pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc", spans=2, tag=f"r{i}-"))
        pipeline.offer(log_parts(table, "checkout-svc", records=2, tag=f"r{i}-"))
    received = world.emu.received
    await wait_until(lambda: len(received.spans(a)) == 40 and len(received.spans(b)) == 40, what="spans")
    await wait_until(lambda: len(received.logs(a)) == 40, what="logs")
    # 20 requests per project and signal became one or two upstream requests each.
    assert len([r for r in received.requests(a) if r.signal == "traces"]) <= 2
    assert len([r for r in received.requests(a) if r.signal == "logs"]) <= 2
    assert all(r.status == 202 and r.content_encoding == "gzip" for r in received.requests())
    assert {s.service_name for s in received.spans(a)} == {"checkout-svc"}
    # The emulator records before it answers: the forwarder counts once the answer is in.
    await wait_until(lambda: pipeline.stats().items == 0, what="empty queues")
    assert sample(metrics, "sentryroute_exported_items_total", signal="traces", project="acme/checkout") == 40
    assert sample(metrics, "sentryroute_exported_items_total", signal="logs", project="acme/checkout") == 40
    assert sample(metrics, "sentryroute_queued_items", project="acme/checkout") == 0
    assert sample(metrics, "sentryroute_queued_bytes") == 0


async def test_full_batches_go_at_once(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    pipeline, _ = await make_pipeline(table, batch_timeout=30.0, batch_max_items=10)
    for i in range(5):
        pipeline.offer(trace_parts(table, "checkout-svc", spans=5, tag=f"r{i}-"))
    # 25 spans: two full batches of 10 leave at once; the last 5 wait for the (long) batch timeout.
    await wait_until(lambda: len(world.emu.received.spans(a)) == 20, what="full batches")
    assert pipeline.stats().items == 5
    assert await pipeline.close(5.0) == 0  # shutdown flushes the partial batch without waiting
    assert len(world.emu.received.spans(a)) == 25

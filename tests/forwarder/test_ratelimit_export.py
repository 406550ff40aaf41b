"""Sentry's rate limits against the emulator: nothing reaches a limited project before its deadline, and
other projects flow meanwhile."""

from __future__ import annotations

from tests.forwarder.queue_support import PipelineFactory, SentryWorld, Upstream, log_parts, sample, trace_parts
from tests.forwarder.support import wait_until


async def test_429_with_rate_limits_header(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.rate_limit(a, seconds=1.5, categories="span", scope="project")
    pipeline, metrics = await make_pipeline(table)
    received = world.emu.received
    pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc", tag="first-"))
    await wait_until(lambda: any(r.status == 429 for r in received.requests(a)), what="a 429")
    assert pipeline.stats().states["acme/checkout"] == "rate_limited"
    # Meanwhile: more data for both; payments flows, checkout waits.
    for i in range(5):
        pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc", tag=f"r{i}-"))
        pipeline.offer(log_parts(table, "checkout-svc", tag=f"r{i}-"))  # a span quota leaves logs alone
    await wait_until(lambda: len(received.spans(b)) == 18, what="payments delivered during the limit")
    await wait_until(lambda: len(received.logs(a)) == 15, what="checkout logs delivered during the span limit")
    await wait_until(lambda: len(received.spans(a)) == 18, what="checkout delivered after the deadline")
    traces = [r for r in received.requests(a) if r.signal == "traces"]
    assert traces[0].status == 429
    # The emulator's header says at least 2 s (ceil of 1.5): nothing was sent before that.
    assert all(r.time - traces[0].time >= 1.5 for r in traces[1:])
    assert [r.status for r in traces[1:]] == [202] * (len(traces) - 1)
    assert sample(metrics, "sentryroute_rate_limited_seconds_total", project="acme/checkout", category="traces") >= 1.5
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="rate_limited") == 0


async def test_bare_429_waits_the_default(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"})
    world.emu.faults.rate_limit_bare(a, count=1)
    pipeline, metrics = await make_pipeline(table, default_rate_limit=1.0)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    pipeline.offer(log_parts(table, "checkout-svc"))
    received = world.emu.received
    await wait_until(lambda: len(received.spans(a)) == 3 and len(received.logs(a)) == 3, what="delivery")
    requests = received.requests(a)
    first = requests[0]
    assert first.status == 429
    same_signal = [r for r in requests[1:] if r.signal == first.signal]
    assert same_signal and all(r.time - first.time >= 1.0 for r in same_signal)
    category = first.signal
    assert sample(metrics, "sentryroute_rate_limited_seconds_total", project="acme/checkout", category=category) >= 1


async def test_organization_scope_limits_every_project_of_the_org(
    world: SentryWorld, make_pipeline: PipelineFactory
) -> None:
    a, b = world.project("checkout"), world.project("payments")
    c = world.project("search", org="globex")
    table = world.table(
        {"checkout-svc": "checkout", "payments-svc": "payments", "search-svc": "search"}, orgs={"search": "globex"}
    )
    world.emu.faults.rate_limit(a, seconds=1.5, scope="organization")
    pipeline, _ = await make_pipeline(table)
    received = world.emu.received
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: any(r.status == 429 for r in received.requests(a)), what="the org limit")
    limited_at = received.requests(a)[0].time
    pipeline.offer(trace_parts(table, "payments-svc", "search-svc"))
    await wait_until(lambda: len(received.spans(c)) == 3, what="another org's project flows")
    assert received.requests(b) == []  # learnt from checkout's answer: payments is not even tried
    await wait_until(lambda: len(received.spans(a)) == 3 and len(received.spans(b)) == 3, what="after the deadline")
    assert all(r.time - limited_at >= 1.5 for r in received.requests(b))
    assert all(r.status == 202 for r in received.requests(b))
    assert pipeline.stats().states["acme/payments"] == "active"


async def test_rate_limited_queue_keeps_at_most_max_hold(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    a, b = world.project("checkout"), world.project("payments")
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    world.emu.faults.rate_limit(a, seconds=30, categories="span")
    pipeline, metrics = await make_pipeline(table, max_hold=0.5)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: any(r.status == 429 for r in world.emu.received.requests(a)), what="a 429")
    pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc"))
    await wait_until(
        lambda: sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="rate_limited") == 6,
        what="aged-out data dropped",
    )
    assert pipeline.stats().queues == {}
    assert len(world.emu.received.spans(b)) == 3
    assert pipeline.stats().states["acme/checkout"] == "rate_limited"


async def test_rate_limits_on_a_202_are_honoured(upstream: Upstream, make_pipeline: PipelineFactory) -> None:
    # Sentry may announce a limit on any answer: the batch was accepted, the next logs wait.
    upstream.script = [(202, {"X-Sentry-Rate-Limits": "1:log_item:project"})]
    table = upstream.table("checkout-svc")
    pipeline, metrics = await make_pipeline(table)
    pipeline.offer(log_parts(table, "checkout-svc"))
    await wait_until(lambda: len(upstream.seen) == 1, what="the first batch")
    await wait_until(lambda: pipeline.stats().states.get("acme/up") == "rate_limited", what="the announced limit")
    pipeline.offer(log_parts(table, "checkout-svc", tag="later-"))
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: len(upstream.seen) == 3, what="both later batches")
    first, *later = upstream.seen
    assert [seen.status for seen in upstream.seen] == [202] * 3
    [logs] = [seen for seen in later if seen.signal == "logs"]
    assert logs.time - first.time >= 1.0  # traces were not limited: they may have gone earlier
    assert sample(metrics, "sentryroute_rate_limited_seconds_total", project="acme/up", category="logs") == 1
    await wait_until(  # the upstream records before it answers; the forwarder counts the answer
        lambda: sample(metrics, "sentryroute_exported_items_total", signal="logs", project="acme/up") == 6,
        what="the exports counted",
    )

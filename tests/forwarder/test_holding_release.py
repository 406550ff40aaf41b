"""Held data against the emulator: projects Sentry refuses, pending and unrouted values, and the tables that
release them."""

from __future__ import annotations

import logging

import pytest
from sentryroute_forwarder.model import Overloaded

from tests.forwarder.queue_support import PipelineFactory, SentryWorld, Upstream, log_parts, sample, trace_parts
from tests.forwarder.support import wait_until


async def test_403_project_id_holds_until_a_table_brings_a_new_key(
    world: SentryWorld, make_pipeline: PipelineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = world.project("checkout"), world.project("payments")
    old_key = world.keys["checkout"]
    world.emu.state.set_key_active(old_key, False)  # the key in the table was revoked: 403 ProjectId
    table = world.table({"checkout-svc": "checkout", "payments-svc": "payments"})
    pipeline, metrics = await make_pipeline(table)
    received = world.emu.received
    with caplog.at_level(logging.DEBUG):
        pipeline.offer(trace_parts(table, "checkout-svc", "payments-svc"))
        pipeline.offer(log_parts(table, "checkout-svc"))
        await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "held:project_id", what="a hold")
        await wait_until(lambda: len(received.spans(b)) == 3, what="payments unaffected")
    assert old_key not in caplog.text
    assert pipeline.held_values() == [("service.name", "checkout-svc", "project_id")]
    refused = len(received.requests(a))
    pipeline.offer(trace_parts(table, "checkout-svc", tag="later-"))
    await wait_until(lambda: sample(metrics, "sentryroute_held_items", reason="project_id") == 9, what="held gauge")
    assert len(received.requests(a)) == refused  # held: no more requests with the refused key

    world.keys["checkout"] = world.emu.state.add_key("acme", "checkout", name="rotated").public
    pipeline.apply_table(world.table({"checkout-svc": "checkout", "payments-svc": "payments"}))
    await wait_until(lambda: len(received.spans(a)) == 6 and len(received.logs(a)) == 3, what="release")
    assert pipeline.held_values() == []
    assert pipeline.stats().states["acme/checkout"] == "active"
    await wait_until(lambda: sample(metrics, "sentryroute_held_items", reason="project_id") == 0, what="gauge to 0")


async def test_a_table_revision_without_changes_keeps_the_hold(
    world: SentryWorld, make_pipeline: PipelineFactory
) -> None:
    world.project("checkout")
    world.emu.state.delete_project("acme", "checkout")
    table = world.table({"checkout-svc": "checkout"})
    pipeline, _ = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "held:project_id", what="a hold")
    pipeline.apply_table(world.table({"checkout-svc": "checkout", "other": "checkout"}))
    assert pipeline.stats().states["acme/checkout"] == "held:project_id"
    assert pipeline.stats().items == 3


async def test_held_project_values_routed_elsewhere_move(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    world.project("checkout")
    b = world.project("payments")
    world.emu.state.delete_project("acme", "checkout")
    table = world.table({"checkout-svc": "checkout"})
    pipeline, _ = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/checkout") == "held:project_id", what="a hold")
    # The operator re-routes the value to another project (same checkout entry still in the table).
    moved = world.table({"checkout-svc": "payments", "x": "checkout"})
    pipeline.apply_table(moved)
    await wait_until(lambda: len(world.emu.received.spans(b)) == 3, what="delivery to the new project")


async def test_pending_value_is_held_then_delivered(world: SentryWorld, make_pipeline: PipelineFactory) -> None:
    world.project("checkout")
    table = world.table({"checkout-svc": "checkout"}, pending=["new-svc"])
    pipeline, metrics = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "new-svc", "checkout-svc"))
    pipeline.offer(log_parts(table, "new-svc"))
    await wait_until(lambda: pipeline.stats().items == 6, what="checkout delivered, new-svc held")
    assert pipeline.held_values() == [("service.name", "new-svc", "pending")]
    await wait_until(lambda: sample(metrics, "sentryroute_held_items", reason="pending") == 6, what="held gauge")

    new = world.project("new-project")  # provisioned meanwhile
    pipeline.apply_table(world.table({"checkout-svc": "checkout", "new-svc": "new-project"}))
    received = world.emu.received
    await wait_until(lambda: len(received.spans(new)) == 3 and len(received.logs(new)) == 3, what="held delivered")
    assert {s.service_name for s in received.spans(new)} == {"new-svc"}
    assert pipeline.held_values() == []
    await wait_until(  # the emulator records before it answers; the forwarder counts the answer
        lambda: sample(metrics, "sentryroute_exported_items_total", signal="traces", project="acme/new-project") == 3,
        what="the export counted",
    )


async def test_unrouted_hold_is_reported_and_delivered_once_routed(
    world: SentryWorld, make_pipeline: PipelineFactory
) -> None:
    world.project("checkout")
    table = world.table({"checkout-svc": "checkout"}, unrouted="hold")
    pipeline, metrics = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "mystery-svc"))
    pipeline.offer(trace_parts(table, "other-svc"))
    assert pipeline.held_values() == [
        ("service.name", "mystery-svc", "unrouted"),
        ("service.name", "other-svc", "unrouted"),
    ]
    c = world.project("mystery")
    pipeline.apply_table(world.table({"checkout-svc": "checkout", "mystery-svc": "mystery"}, unrouted="drop"))
    await wait_until(lambda: len(world.emu.received.spans(c)) == 3, what="the routed value delivered")
    # Still unrouted, now with `drop`: that held data is dropped and counted.
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="unrouted") == 3
    await wait_until(lambda: pipeline.stats().items == 0, what="nothing left")
    assert pipeline.held_values() == []


async def test_held_data_is_refused_past_half_the_bound_and_ages_out(
    world: SentryWorld, make_pipeline: PipelineFactory
) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"}, pending=["new-svc"])
    pipeline, metrics = await make_pipeline(table, max_hold=0.5, max_bytes=40_000)
    # Data that cannot flow may fill half the bound; past it the client is told to retry, nothing is dropped.
    accepted = 0
    with pytest.raises(Overloaded) as refused:
        for _ in range(40):
            pipeline.offer(trace_parts(table, "new-svc", spans=10))
            accepted += 10
    assert refused.value.retry_after is None  # a held value: no telling when its project appears
    assert 0 < pipeline.stats().items == accepted
    assert pipeline.stats().bytes <= 20_000
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="pending") == 0
    assert pipeline.has_room(15_000)
    pipeline.offer(trace_parts(table, "checkout-svc"))  # healthy data still flows
    # Age: nothing held is older than max_hold.
    await wait_until(lambda: pipeline.stats().items == 0, what="held data aged out")
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="pending") == accepted
    assert len(world.emu.received.spans(a)) == 3


async def test_401_holds_until_the_key_changes(upstream: Upstream, make_pipeline: PipelineFactory) -> None:
    upstream.status, upstream.body = 401, b'{"detail":"bad x-sentry-auth header"}'
    table = upstream.table("checkout-svc", key="a" * 32)
    pipeline, _ = await make_pipeline(table)
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: pipeline.stats().states.get("acme/up") == "held:unauthorized", what="a hold")
    assert pipeline.held_values() == [("service.name", "checkout-svc", "unauthorized")]
    upstream.status = 202
    pipeline.apply_table(upstream.table("checkout-svc", key="b" * 32))
    await wait_until(lambda: upstream.seen[-1].status == 202, what="delivery with the new key")
    assert upstream.seen[-1].headers["x-sentry-auth"] == f"sentry sentry_key={'b' * 32}"
    await wait_until(lambda: pipeline.stats().items == 0, what="an empty queue")


async def test_many_held_values_together_keep_half_the_bound(
    world: SentryWorld, make_pipeline: PipelineFactory
) -> None:
    a = world.project("checkout")
    table = world.table({"checkout-svc": "checkout"}, unrouted="hold")
    pipeline, metrics = await make_pipeline(table, max_bytes=200_000)
    strays = [f"stray-{i}" for i in range(50)]  # distinct unrouted values: each one is a queue that cannot flow
    refused = 0
    for _ in range(8):
        for stray in strays:
            try:
                pipeline.offer(trace_parts(table, stray, spans=5))
            except Overloaded:
                refused += 1
    # However many queues are stuck, healthy projects keep half of the bound for themselves; the rest of the
    # held data was refused (the clients retry), none of what was accepted dropped.
    assert refused > 0
    assert pipeline.stats().bytes <= 100_000
    assert pipeline.has_room(95_000)
    assert sample(metrics, "sentryroute_dropped_items_total", signal="traces", reason="unrouted") == 0
    pipeline.offer(trace_parts(table, "checkout-svc"))
    await wait_until(lambda: len(world.emu.received.spans(a)) == 3, what="checkout flows")

"""Pacing with many projects: a project queue that fits in one batch is no backlog, whatever its equal share of
`--pace-bytes` (with 1,000 projects that share is smaller than one SDK-sized request) — until all of them
together hold more than 1.5 x `--pace-bytes` (`CROWDED`): then every request into a queue that can flow waits."""

from __future__ import annotations

import itertools

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.pacing import CROWDED, Pacer
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import MemoryStore, QueueKey, Record

from tests.forwarder.queue_support import pipeline_test_settings

KIB = 1024
_seq = itertools.count(1)


def queued(store: MemoryStore, project: str, nbytes: int) -> QueueKey:
    key = QueueKey.for_project(Signal.TRACES, project)
    record = Record(next(_seq), Signal.TRACES, b"x" * nbytes, 1, 1, "service.name", project, accepted_at=0.0)
    store.append(key, record)
    return key


async def test_queues_within_one_batch_are_not_paced_up_to_the_crowded_bound() -> None:
    settings = pipeline_test_settings(pace_bytes=64 * KIB, batch_max_bytes=16 * KIB)
    store = MemoryStore()
    pacer = Pacer(settings, store=store, states=QueueStates(), metrics=ForwarderMetrics())
    keys = [queued(store, f"acme/p{n}", 8 * KIB) for n in range(12)]  # 96 KiB queued: above --pace-bytes
    assert settings.pace_bytes < store.bytes() <= CROWDED * settings.pace_bytes
    assert all(pacer.hold([key]) is None for key in keys)  # each holds half a batch: it all leaves next time

    big = queued(store, "acme/big", 40 * KIB)  # more than one batch: a backlog, its clients wait
    held = pacer.hold([big])
    assert held is not None
    pacer.release_all()
    assert held.done()


async def test_many_queues_above_the_crowded_bound_hold_every_flowing_request_until_below_it() -> None:
    settings = pipeline_test_settings(pace_bytes=64 * KIB, batch_max_bytes=16 * KIB)
    store, states = MemoryStore(), QueueStates()
    pacer = Pacer(settings, store=store, states=states, metrics=ForwarderMetrics())
    keys = [queued(store, f"acme/p{n}", 8 * KIB) for n in range(13)]  # 104 KiB: above 1.5 x 64 KiB
    assert store.bytes() > CROWDED * settings.pace_bytes
    held = [pacer.hold([key]) for key in keys[:2]]  # half a batch each, yet held: together they are the memory
    assert all(future is not None and not future.done() for future in held)

    failing = keys[2]
    states.lane(failing).failures = 1  # a queue that cannot flow is bounded by admission, never paced
    assert pacer.hold([failing]) is None

    store.ack(keys[12], [record.seq for record in store.records(keys[12])])  # one batch delivered: 96 KiB left
    pacer.progress()
    assert all(future is not None and future.done() for future in held)  # at the crowded bound: released


async def test_a_soft_bound_below_one_batch_is_the_floor() -> None:
    settings = pipeline_test_settings(pace_bytes=4 * KIB, batch_max_bytes=16 * KIB)
    store = MemoryStore()
    pacer = Pacer(settings, store=store, states=QueueStates(), metrics=ForwarderMetrics())
    keys = [queued(store, f"acme/p{n}", 6 * KIB) for n in range(3)]
    held = [pacer.hold([key]) for key in keys]  # 6 KiB each: above the whole soft bound, so paced
    assert all(future is not None for future in held)
    pacer.release_all()

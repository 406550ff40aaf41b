"""The in-memory queue store: ordering, batch bounds, acknowledgement by sequence number, accounting."""

from __future__ import annotations

from sentryroute_forwarder.log_throttle import LogThrottle
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.store import MemoryStore, QueueKey, Record

KEY = QueueKey.for_project(Signal.TRACES, "acme/a")
OTHER = QueueKey.for_hold(Signal.TRACES, "pending", "service.name", "new")
THIRD = QueueKey.for_project(Signal.LOGS, "acme/a")


def record(seq: int, *, items: int = 2, size: int = 10) -> Record:
    return Record(seq, Signal.TRACES, bytes(size), items, 1, "service.name", "a", accepted_at=float(seq))


def test_peek_respects_bounds_but_returns_at_least_one() -> None:
    store = MemoryStore()
    for seq in range(1, 6):
        store.append(KEY, record(seq))
    assert [r.seq for r in store.peek(KEY, max_items=5, max_bytes=1000)] == [1, 2]
    assert [r.seq for r in store.peek(KEY, max_items=100, max_bytes=30)] == [1, 2, 3]
    assert [r.seq for r in store.peek(KEY, max_items=1, max_bytes=1)] == [1]
    assert store.peek(OTHER, max_items=1, max_bytes=1) == []


def test_ack_by_sequence_survives_trimming_in_between() -> None:
    store = MemoryStore()
    for seq in range(1, 4):
        store.append(KEY, record(seq))
    batch = store.peek(KEY, max_items=100, max_bytes=100)
    assert store.drop_oldest(KEY) == record(1)
    removed = store.ack(KEY, [r.seq for r in batch])
    assert [r.seq for r in removed] == [2, 3]
    assert store.queues() == [] and store.queue_count() == 0
    assert (store.items(), store.bytes()) == (0, 0)


def test_accounting_per_queue_and_total() -> None:
    store = MemoryStore()
    store.append(KEY, record(1, items=3, size=7))
    store.append(OTHER, record(2, items=5, size=11))
    assert (store.items(KEY), store.bytes(KEY)) == (3, 7)
    assert (store.items(), store.bytes()) == (8, 18)
    assert set(store.queues()) == {KEY, OTHER}
    assert [r.seq for r in store.take_all(OTHER)] == [2]
    assert (store.items(), store.bytes()) == (3, 7)
    assert store.oldest(KEY) == record(1, items=3, size=7)


def test_replace_keeps_the_order() -> None:
    store = MemoryStore()
    for seq in (1, 2, 3):
        store.append(KEY, record(seq))
    store.replace(KEY, 2, [record(10, items=1, size=4), record(11, items=1, size=4)])
    assert [r.seq for r in store.records(KEY)] == [1, 10, 11, 3]
    assert (store.items(KEY), store.bytes(KEY)) == (6, 28)
    store.replace(KEY, 1, [record(12)])
    assert [r.seq for r in store.records(KEY)] == [12, 10, 11, 3]


def test_drop_log_lines_are_throttled_per_queue() -> None:
    notices = LogThrottle(interval=10.0, capacity=2)
    assert notices.add(KEY, 3, now=100.0) == 3
    assert notices.add(KEY, 4, now=101.0) == 0
    assert notices.add(OTHER, 1, now=101.0) == 1
    assert notices.add(KEY, 5, now=111.0) == 9  # everything since the last line
    assert notices.add(THIRD, 1, now=112.0) == 1
    assert notices.add(OTHER, 1, now=112.0) == 1  # forgotten (capacity 2): memory stays bounded

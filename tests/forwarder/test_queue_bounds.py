"""The Retry-After estimate of a full queue: the excess over the bound at the recent delivery rate."""

from __future__ import annotations

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.accounting import QueueAccounting
from sentryroute_forwarder.queue.bounds import MAX_RETRY_ESTIMATE, Bounds
from sentryroute_forwarder.queue.pacing import Pacer
from sentryroute_forwarder.queue.states import QueueStates
from sentryroute_forwarder.queue.store import MemoryStore, QueueKey, Record

from tests.forwarder.queue_support import pipeline_test_settings

KEY = QueueKey.for_project(Signal.TRACES, "acme/a")


def bounds_with(queued: int, *, bound: int = 10_000) -> tuple[Bounds, MemoryStore]:
    store, states = MemoryStore(), QueueStates()
    store.append(KEY, Record(1, Signal.TRACES, bytes(queued), 1, 1, None, None, accepted_at=0.0))
    metrics, settings = ForwarderMetrics(), pipeline_test_settings(max_bytes=bound)
    accounting = QueueAccounting(metrics, store, states)
    pacer = Pacer(settings, store=store, states=states, metrics=metrics)
    return Bounds(settings, store=store, states=states, accounting=accounting, pacer=pacer), store


def test_retry_after_is_the_excess_at_the_delivery_rate() -> None:
    bounds, _ = bounds_with(9_000)
    assert bounds.retry_after(500) == 0.0  # it fits
    assert bounds.retry_after(3_000) is None  # nothing delivered yet: no estimate (clients get --retry-after)
    bounds.sample_rate(100.0)
    bounds.delivered(1_000)
    bounds.sample_rate(101.0)  # 1,000 bytes/s
    assert bounds.retry_after(3_000) == 2.0  # 2,000 bytes over the bound
    bounds.delivered(10)
    bounds.sample_rate(102.0)  # slower now: the estimate follows (smoothed)
    assert 3.5 < (bounds.retry_after(3_000) or 0) < 4.5
    assert bounds.retry_after(10**9) == MAX_RETRY_ESTIMATE

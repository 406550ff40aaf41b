"""Lane mechanics: jittered back-off and the batch size learnt from 413 answers."""

from __future__ import annotations

import random

from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.lane import Lane, backoff_delay
from sentryroute_forwarder.queue.store import QueueKey


def test_backoff_grows_exponentially_with_jitter_up_to_the_maximum() -> None:
    rng = random.Random(7)
    for failures, full in [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (60, 30.0)]:
        delays = [backoff_delay(failures, initial=0.5, maximum=30.0, rng=rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 4  # jittered: lanes do not retry in lockstep


def test_byte_cap_grows_back_after_deliveries() -> None:
    lane = Lane(QueueKey.for_project(Signal.TRACES, "acme/a"))
    lane.byte_cap = 1000
    caps = []
    while lane.byte_cap is not None:
        caps.append(lane.byte_cap)
        lane.relax_byte_cap(10_000)
    assert caps[:3] == [1000, 1251, 1564]
    assert len(caps) < 15

"""Log lines for dropped values: once per value per interval, with a bounded memory of values."""

from __future__ import annotations

import logging

from sentryroute_forwarder.receive.notices import DropNotices
from sentryroute_forwarder.route.split import DroppedValue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sentryroute_forwarder.receive.notices"]


def test_each_value_is_logged_once_per_interval(caplog):
    caplog.set_level(logging.WARNING)
    clock = Clock()
    notices = DropNotices(interval=60, capacity=10, clock=clock)
    dropped = [
        DroppedValue("unrouted", "service.name", "stray\nname", 3),
        DroppedValue("refused", "service.name", None, 1),
    ]
    notices.note("spans", dropped)
    notices.note("spans", dropped)
    clock.now += 59
    notices.note("spans", dropped)
    assert len(lines(caplog)) == 2
    assert "dropping 3 spans of service.name='stray\\nname' (unrouted)" in lines(caplog)[0]  # escaped, one line
    assert "(missing or not a string)" in lines(caplog)[1]
    clock.now += 2
    notices.note("spans", dropped[:1])
    assert len(lines(caplog)) == 3


def test_memory_of_values_is_bounded(caplog):
    caplog.set_level(logging.WARNING)
    notices = DropNotices(interval=60, capacity=3, clock=Clock())
    for i in range(100):
        notices.note("log records", [DroppedValue("unrouted", "service.name", f"v{i}", 1)])
    notices.note("log records", [DroppedValue("unrouted", "service.name", "v0", 1)])  # forgotten: logged again
    assert len(lines(caplog)) == 101


def test_long_values_are_cut_short(caplog):
    caplog.set_level(logging.WARNING)
    DropNotices(clock=Clock()).note("spans", [DroppedValue("unrouted", "service.name", "x" * 100_000, 1)])
    (line,) = lines(caplog)
    assert "'" + "x" * 200 + "'…" in line and len(line) < 400

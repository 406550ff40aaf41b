"""Many projects falling due at once start their batches a few per event-loop iteration (queue/turns.py), so
intake is answered between them, and a lane waiting for its turn sends what arrived meanwhile in that batch."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.queue.pipeline import QueuePipeline
from sentryroute_forwarder.queue.turns import SendTurns

from sentryroute.emulator import SentryEmulator
from tests.forwarder.support import (
    emulator_projects,
    emulator_table,
    local_settings,
    metric_value,
    resource_spans,
    traces_request,
    wait_until,
    write_table,
)

PROJECTS = 160


class _Iterations:
    """Counts event-loop iterations: a callback that re-schedules itself once per iteration."""

    def __init__(self) -> None:
        self.count = 0
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def test_at_most_per_turn_pass_per_iteration_in_order() -> None:
    turns = SendTurns(3)
    iterations = _Iterations()
    passed: list[tuple[int, int]] = []  # (caller, iteration)

    async def caller(n: int) -> None:
        await turns.wait()
        passed.append((n, iterations.count))

    tasks = [asyncio.create_task(caller(n)) for n in range(20)]
    loser = tasks[7]
    await asyncio.sleep(0)  # every caller is waiting (or passed) now
    loser.cancel()  # a cancelled waiter gives its place up; the others still pass
    await asyncio.gather(*tasks, return_exceptions=True)
    iterations.stop()
    assert [n for n, _ in passed] == [n for n in range(20) if n != 7]  # first come, first served
    per_iteration: dict[int, int] = {}
    for _, iteration in passed:
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1
    assert max(per_iteration.values()) <= 3
    assert len(per_iteration) >= 7  # 19 callers, 3 per iteration


def test_per_turn_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SendTurns(0)


async def test_many_projects_due_at_once_leave_room_for_intake(emulator: SentryEmulator, tmp_path) -> None:
    services = emulator_projects(emulator, {f"svc-{n}": f"svc-{n}" for n in range(PROJECTS)})
    path = tmp_path / "routes.json"
    write_table(path, emulator_table(emulator, services))
    # Every project gets data in one request, so every lane's batch falls due in the same iteration.
    first = traces_request(*(resource_spans(f"svc-{n}", spans=1, tag="a") for n in range(PROJECTS)))
    second = traces_request(*(resource_spans(f"svc-{n}", spans=1, tag="b") for n in range(PROJECTS)))
    async with Forwarder(local_settings(path, batch_timeout=0.05)) as forwarder, aiohttp.ClientSession() as http:
        pipeline = forwarder.pipeline
        assert isinstance(pipeline, QueuePipeline)
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}
        async with http.post(url, data=first.SerializeToString(), headers=headers) as resp:
            assert resp.status == 200

        # As soon as lanes wait for their turn (checked on every iteration, not on a clock), send more.
        async with asyncio.timeout(30):
            while metric_value(forwarder, "sentryroute_export_turn_waits_total") == 0:  # noqa: ASYNC110 - no event
                await asyncio.sleep(0)  # one iteration: the flush lasts only a few dozen
        async with http.post(url, data=second.SerializeToString(), headers=headers) as resp:
            assert resp.status == 200
        # Answered while the flush was still going on: some projects' first batches had not started yet.
        started = len(emulator.received.requests()) + pipeline.stats().in_flight
        assert started < PROJECTS

        ids = [project.id for project, _ in services.values()]
        await wait_until(lambda: all(emulator.received.span_count(i) == 2 for i in ids), within=60, what="spans")
        # Lanes still waiting for their turn took the second request's span along: fewer than two batches each.
        assert PROJECTS <= len(emulator.received.requests()) < 2 * PROJECTS
        await wait_until(lambda: pipeline.stats().items == 0, what="empty queues")
        assert metric_value(
            forwarder, "sentryroute_exported_items_total", {"signal": "traces", "project": "acme/svc-0"}
        )

"""The gRPC handler threads' way into the event loop: results, exceptions and awaited commits come back."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest
from sentryroute_forwarder.receive.bridge import LoopBridge
from sentryroute_forwarder.receive.intake import NotReady, Outcome


async def call_from_thread(bridge: LoopBridge, function, argument):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(bridge.call, function, argument)


async def test_the_function_runs_on_the_loop_thread_and_its_outcome_returns():
    bridge = LoopBridge(asyncio.get_running_loop())
    loop_thread = threading.get_ident()
    ran_on: list[int] = []

    def accept(body: bytes) -> Outcome:
        ran_on.append(threading.get_ident())
        return Outcome(rejected=len(body), message="counted")

    outcome = await call_from_thread(bridge, accept, b"abc")
    assert (outcome.rejected, outcome.message) == (3, "counted")
    assert ran_on == [loop_thread]


async def test_an_exception_is_raised_in_the_calling_thread():
    bridge = LoopBridge(asyncio.get_running_loop())

    def refuse(_: bytes) -> Outcome:
        raise NotReady

    with pytest.raises(NotReady):
        await call_from_thread(bridge, refuse, b"")


async def test_the_commit_is_awaited_before_the_answer():
    bridge = LoopBridge(asyncio.get_running_loop())
    started = asyncio.Event()
    committed = asyncio.Event()
    release = asyncio.Event()

    async def commit() -> None:
        started.set()
        await release.wait()
        committed.set()

    def call_and_look() -> tuple[Outcome, bool]:  # what the calling thread sees the moment its answer comes back
        outcome = bridge.call(lambda _: Outcome(commit=commit()), b"")
        return outcome, committed.is_set()

    call = asyncio.ensure_future(asyncio.to_thread(call_and_look))
    async with asyncio.timeout(10):
        await started.wait()  # the commit runs on the loop, the thread waits on it
    answered, _ = await asyncio.wait({call}, timeout=0.2)  # a window for an early answer; the correct one cannot be
    assert not answered
    release.set()
    outcome, committed_before_answer = await call
    assert committed_before_answer and outcome.rejected == 0


async def test_a_failed_commit_is_raised_in_the_calling_thread():
    bridge = LoopBridge(asyncio.get_running_loop())

    async def commit() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await call_from_thread(bridge, lambda _: Outcome(commit=commit()), b"")


async def test_calls_from_many_threads_at_once_all_come_back_with_their_own_answers():
    """Calls that arrive while the loop is already scheduled ride along with one wake-up: none is lost."""
    bridge = LoopBridge(asyncio.get_running_loop())
    start = threading.Barrier(16)

    def caller(n: int) -> list[int]:
        start.wait()
        return [bridge.call(lambda arg: Outcome(rejected=arg), n * 1000 + i).rejected for i in range(200)]

    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(16) as threads:  # all 16 at once (to_thread's pool may be smaller)
        answers = await asyncio.gather(*(loop.run_in_executor(threads, caller, n) for n in range(16)))
    assert answers == [[n * 1000 + i for i in range(200)] for n in range(16)]

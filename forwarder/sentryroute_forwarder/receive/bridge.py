"""Calling event-loop code from a receiver thread and waiting for its answer.

The gRPC receiver's handlers run in grpcio's server threads; the intake, the queue and the exporters are
single-threaded asyncio code. `LoopBridge.call` runs a function on the loop, awaits the `commit` of the
`Outcome` it returns when there is one (a disk queue's write), and hands the result or the exception back
to the waiting thread.

Per request: an append to a queue of calls and one bare lock as a latch (the thread blocks acquiring it, the
loop releases it). A `concurrent.futures.Future` would do the same with a Condition, measured at about 10 %
of the loop's time on SDK-sized gRPC requests. The loop is woken (`call_soon_threadsafe`: a write to its
self-pipe, then a read) only when the queue was idle; calls that arrive while it is scheduled or draining
ride along, so under load one wake-up serves many handler threads.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from sentryroute_forwarder.receive.intake import Outcome

__all__ = ["LoopBridge"]

T = TypeVar("T")


class _Call:
    __slots__ = ("done", "error", "outcome")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()  # released by the loop once `outcome` or `error` is set
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None


class LoopBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._commits: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak references)
        # Calls waiting for the loop. deque.append/popleft are atomic; `_scheduled` may be set twice by two
        # threads at once, which only costs a spare `_drain`.
        self._pending: collections.deque[tuple[_Call, Callable[[Any], Outcome], Any]] = collections.deque()
        self._scheduled = False

    def call(self, function: Callable[[Any], Outcome], argument: Any) -> Outcome:
        """`function(argument)` run on the loop (its commit awaited); raises what it raised. Blocks the caller."""
        call = _Call()
        self._pending.append((call, function, argument))
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nothing will ever answer
                self._scheduled = False
                raise
        call.done.acquire()
        if call.error is not None:
            raise call.error
        assert call.outcome is not None
        return call.outcome

    def wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and block the caller until it is done (rare paths only: it costs a
        `concurrent.futures.Future`)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _drain(self) -> None:
        """On the loop: run every pending call, including those appended while draining."""
        self._scheduled = False  # before draining: a call appended from now on either is drained here or wakes us
        pending = self._pending
        while pending:
            self._run(*pending.popleft())

    def _run(self, call: _Call, function: Callable[[Any], Outcome], argument: Any) -> None:
        try:
            outcome = function(argument)
        except BaseException as exc:  # handed to the waiting thread, raised there
            call.error = exc
            call.done.release()
            return
        if outcome.commit is None:
            call.outcome = outcome
            call.done.release()
            return
        task = asyncio.ensure_future(self._commit(call, outcome, outcome.commit))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    @staticmethod
    async def _commit(call: _Call, outcome: Outcome, commit: Awaitable[None]) -> None:
        try:
            await commit
            call.outcome = outcome
        except BaseException as exc:  # cancelled or failed: the client is told, never a silent success
            call.error = exc
        finally:
            call.done.release()

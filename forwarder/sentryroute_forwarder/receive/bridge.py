"""Calling event-loop code from a receiver thread and waiting for its answer.

The gRPC receiver's handlers run in grpcio's server threads; the intake, the queue and the exporters are
single-threaded asyncio code. `LoopBridge.call` runs a function on the loop, awaits the `commit` of the
`Outcome` it returns when there is one (a disk queue's write), and hands the result or the exception back
to the waiting thread. One `call_soon_threadsafe` and one `Future` per request, no task unless a commit
is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sentryroute_forwarder.receive.intake import Outcome

__all__ = ["LoopBridge"]


class LoopBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call(self, function: Callable[[Any], Outcome], argument: Any) -> Outcome:
        """`function(argument)` run on the loop (its commit awaited); raises what it raised. Blocks the caller."""
        future: Future[Outcome] = Future()
        self._loop.call_soon_threadsafe(self._run, future, function, argument)
        return future.result()

    def _run(self, future: Future[Outcome], function: Callable[[Any], Outcome], argument: Any) -> None:
        try:
            outcome = function(argument)
        except BaseException as exc:  # handed to the waiting thread, raised there
            future.set_exception(exc)
            return
        if outcome.commit is None:
            future.set_result(outcome)
            return
        commit = asyncio.ensure_future(outcome.commit)
        commit.add_done_callback(lambda done: _settle(future, done, outcome))


def _settle(future: Future[Outcome], commit: asyncio.Future[None], outcome: Outcome) -> None:
    if commit.cancelled():
        future.set_exception(asyncio.CancelledError())
    elif (error := commit.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(outcome)

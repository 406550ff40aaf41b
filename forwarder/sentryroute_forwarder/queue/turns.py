"""How many export batches start per event-loop iteration: a bound, so intake is served between starts.

Receiving and exporting share one event loop. Starting a batch (taking it from the queue, gzip, writing the
request) costs ~0.2 ms; with 1,000 projects the batch timeouts of a hundred lanes fall due together after any
stall, and every client request that arrives meanwhile would wait behind all of them (tens of ms: the p99 of
the 1,000-projects benchmark shape). With this bound the loop polls its sockets after every `per_turn` starts.

A lane that waits for its turn has not taken its batch yet: it takes it when its turn comes, with whatever
arrived meanwhile (up to the batch limits). So when exporting falls behind, batches grow instead of upstream
requests multiplying, and the backlog of waiting lanes shrinks by itself.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["SendTurns"]


class SendTurns:
    """A FIFO gate: at most `per_turn` waiters pass per event-loop iteration, the rest in the next ones."""

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be at least 1")
        self._per_turn = per_turn
        self._passed = 0  # passes granted since the last new iteration began
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._turn_scheduled = False

    @property
    def waiting(self) -> int:
        return sum(not future.done() for future in self._waiting)

    async def wait(self) -> bool:
        """Return once this caller may start a batch (at once while this iteration has passes left); whether it
        had to wait for a later iteration."""
        if self._passed < self._per_turn and not self._waiting:
            self._passed += 1
            self._schedule_turn()
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._schedule_turn()
        await future  # cancelled waiters stay in the deque as done futures and are skipped
        return True

    def _schedule_turn(self) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            # `call_soon` runs in the next iteration, after the loop has polled its sockets again.
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_scheduled = False
        self._passed = 0
        while self._waiting and self._passed < self._per_turn:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                self._passed += 1
        if self._passed:
            # The passes just granted run in the next iteration: that one starts no others beyond the bound.
            self._schedule_turn()

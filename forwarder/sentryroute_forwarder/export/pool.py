"""Keep-alive connections to ingest hosts, within limits: at most 64 per host and 256 in all.

Why not aiohttp's client: it was the only reason the forwarder imported aiohttp (with yarl and multidict;
~1.5 MB of it SSL contexts built at import), and its per-request machinery (a response object, a
StreamReader, timers and traces per request) is a large part of what each upstream post costs, which matters
most with many projects posting small batches. The forwarder only ever POSTs a gzipped body and reads a short
answer, so the pool below is small; the parsing is llhttp's (`connection.py`). Measured against aiohttp's
client (2 vCPU): the forwarder at rest 64.7 -> 56.6 MB; ~40-50 instead of ~90-130 µs of CPU per 1 KB post,
~125-170 instead of ~200-270 per 500 KB; on 1,000 services posting small batches, 4.2-4.8 -> 3.2-3.5 µs
per span.

What the pool guarantees:
- an idle connection to the same origin is reused (the one used last first: the others idle out);
- a connection is opened only within the limits; callers over them wait, and are served in the order they
  came as connections are released or closed (an idle connection of another origin is closed to make room);
- connections idle longer than `keepalive` (15 s, as aiohttp) are closed;
- a connection that is not reusable (an error, a timeout, `Connection: close`, HTTP/1.0, an answer that came
  before its request was written whole, an answer body cut short) is closed, never handed out again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable

from sentryroute_forwarder.export.connection import Connection

__all__ = ["KEEPALIVE", "LIMIT", "LIMIT_PER_HOST", "Origin", "Pool"]

LIMIT = 256
LIMIT_PER_HOST = 64
#: Seconds an idle connection is kept (aiohttp's default; Sentry's load balancers keep them longer).
KEEPALIVE = 15.0
#: How long connecting tries one address before also trying the next (RFC 8305; aiohttp's default).
HAPPY_EYEBALLS_DELAY = 0.25

Origin = tuple[str, str, int]  # scheme, host, port


class Pool:
    """Connections by origin. `acquire` returns a connection to send one request on; `release` or `discard`
    gives it back."""

    def __init__(
        self,
        tls: Callable[[], Awaitable[ssl.SSLContext]],
        *,
        limit: int = LIMIT,
        limit_per_host: int = LIMIT_PER_HOST,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self._tls = tls
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive = keepalive
        self._loop = asyncio.get_running_loop()
        self._counts: dict[Origin, int] = {}  # connections open or being opened, by origin
        self._total = 0
        self._idle: dict[Origin, list[Connection]] = {}  # oldest first
        self._busy: set[Connection] = set()
        self._waiters: deque[tuple[Origin, asyncio.Future[Connection | None]]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def acquire(self, origin: Origin, *, fresh: bool = False) -> tuple[Connection, bool]:
        """A connection to `origin` and whether it was used before; `fresh`: never one used before."""
        if self._closed:
            raise ConnectionError("the export client is closed")
        if not fresh:
            connection = self.take(origin)
            if connection is not None:
                return connection, True
        if not self._make_room(origin):
            waiter: asyncio.Future[Connection | None] = self._loop.create_future()
            self._waiters.append((origin, waiter))
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._give_back(origin, waiter.result())  # served, then cancelled before it could run
                raise
            if handed is not None:  # an idle connection, passed on by `release`
                self._busy.add(handed)
                return handed, True
        # A slot is ours (counted): open a connection in it.
        try:
            connection = await self._open(origin)
        except BaseException:
            self._free(origin)
            raise
        self._busy.add(connection)
        return connection, False

    def release(self, connection: Connection) -> None:
        """A request is done with `connection`: kept for the next one if it is reusable, else closed."""
        self._busy.discard(connection)
        if not connection.reusable or connection.closed or self._closed:
            self.discard(connection)
            return
        origin = connection.origin
        connection.idle_since = self._loop.time()
        for index, (wanted, waiter) in enumerate(self._waiters):
            if wanted == origin and not waiter.done():
                del self._waiters[index]
                waiter.set_result(connection)
                return
        if self._total >= self._limit and any(not waiter.done() for _, waiter in self._waiters):
            self.discard(connection)  # others wait for room under the total limit: make it
            return
        self._idle.setdefault(origin, []).append(connection)
        if self._sweep is None:
            self._sweep = self._loop.call_at(connection.idle_since + self._keepalive, self._close_idle)

    def discard(self, connection: Connection) -> None:
        """Close `connection` and free its slot (an idle one gracefully, one cut short at once)."""
        self._busy.discard(connection)
        if connection.reusable:
            connection.close()
        else:
            connection.abort()
        self._forget(connection)

    async def close(self) -> None:
        """Close every connection; waiters get ConnectionError."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        waiters, self._waiters = self._waiters, deque()
        for _, waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the export client is closed"))
        for connections in list(self._idle.values()):
            for connection in list(connections):
                self.discard(connection)
        for connection in list(self._busy):
            self.discard(connection)
        await asyncio.sleep(0)  # let the transports run connection_lost

    # -- internals --------------------------------------------------------------------------------------------

    def take(self, origin: Origin) -> Connection | None:
        """An idle connection to `origin`, if there is one (the one used last)."""
        connections = self._idle.get(origin)
        if not connections:
            return None
        expired = self._loop.time() - self._keepalive
        while connections:
            connection = connections.pop()
            if connection.closed or connection.transport is None or connection.transport.is_closing():
                self._forget(connection)
            elif connection.idle_since <= expired:
                self.discard(connection)  # the newest one is too old: so are the rest
            else:
                if not connections:
                    del self._idle[origin]
                self._busy.add(connection)
                return connection
        self._idle.pop(origin, None)
        return None

    def _make_room(self, origin: Origin) -> bool:
        """Count a new connection to `origin` if the limits allow one now (closing an idle connection of
        another origin if only the total limit is in the way)."""
        if self._counts.get(origin, 0) >= self._limit_per_host:
            return False
        if self._total >= self._limit and not self._close_one_idle():
            return False
        self._counts[origin] = self._counts.get(origin, 0) + 1
        self._total += 1
        return True

    def _close_one_idle(self) -> bool:
        """Close the oldest idle connection of some origin to make room under the total limit."""
        for origin, connections in self._idle.items():
            if connections:
                connection = connections.pop(0)
                if not connections:
                    del self._idle[origin]
                connection.counted = False
                self._uncount(origin)
                connection.close()
                return True
        return False

    def _uncount(self, origin: Origin) -> None:
        count = self._counts[origin] - 1
        if count:
            self._counts[origin] = count
        else:
            del self._counts[origin]
        self._total -= 1

    def _serve(self) -> None:
        """Room was made: the waiters it can serve, in the order they came, get a slot counted for them."""
        waiting: deque[tuple[Origin, asyncio.Future[Connection | None]]] = deque()
        while self._waiters:
            wanted, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if self._make_room(wanted):
                waiter.set_result(None)  # it opens its connection in the slot
            else:
                waiting.append((wanted, waiter))
                if self._total >= self._limit:
                    break
        waiting.extend(self._waiters)
        self._waiters = waiting

    def _free(self, origin: Origin) -> None:
        self._uncount(origin)
        if self._waiters:
            self._serve()

    def _forget(self, connection: Connection) -> None:
        """`connection` is closed: out of the idle lists, its slot freed (once)."""
        idle = self._idle.get(connection.origin)
        if idle is not None and connection in idle:
            idle.remove(connection)
            if not idle:
                del self._idle[connection.origin]
        if connection.counted:
            connection.counted = False
            self._free(connection.origin)

    def _give_back(self, origin: Origin, handed: Connection | None) -> None:
        if handed is None:
            self._free(origin)
        else:
            self.release(handed)

    async def _open(self, origin: Origin) -> Connection:
        scheme, host, port = origin
        context = await self._tls() if scheme == "https" else None
        _, connection = await self._loop.create_connection(
            lambda: Connection(origin, self._forget),
            host,
            port,
            ssl=context,
            server_hostname=host if context is not None else None,
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
        )
        # From here the connection holds the slot (freed when it is discarded or lost); until here, a failure
        # frees it in `acquire`.
        connection.counted = True
        return connection

    def _close_idle(self) -> None:
        """Close the connections idle for `keepalive`; come back when the next one will be."""
        self._sweep = None
        expired = self._loop.time() - self._keepalive
        oldest: float | None = None
        for connections in list(self._idle.values()):
            while connections and connections[0].idle_since <= expired:
                self.discard(connections[0])
            if connections:
                first = connections[0].idle_since
                oldest = first if oldest is None else min(oldest, first)
        if oldest is not None:
            self._sweep = self._loop.call_at(oldest + self._keepalive, self._close_idle)

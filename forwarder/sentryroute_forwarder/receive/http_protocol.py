"""An HTTP/1.x server on asyncio and httptools, for the OTLP/HTTP receiver: connections, limits, answers.

aiohttp's server costs about as much per request as all of the receiver's own work on an SDK-sized request
(a task, a StreamReader, a request object and its waiters for each one; measured: 31-35 against 13-20 µs per
1 x 50 request for a bare handler). This one parses with httptools (llhttp, the parser Node.js and uvicorn
use), keeps a request's body as the chunks the parser hands over, and asks its `Handler` for the answer when
the body is complete — on the event loop, without a task unless the handler has to wait.

What a connection guarantees:
- a request's head is refused when a line is over `MAX_FIELD_BYTES` or the head over `MAX_HEAD_BYTES`;
  malformed requests get a 400 and the connection is closed;
- the handler sees the head before any of the body (`Handler.begin`): it can refuse a request at once, and
  the rest of that body is read and dropped (or, for answers that close, read for a short while at most, so
  the client sees the answer);
- a request must arrive whole within `read_timeout` of its first byte (else 408), an idle kept-alive
  connection is closed after `read_timeout`;
- answers go out in request order (pipelining), each in one write; a client that does not read them stops
  being read from;
- `Expect: 100-continue` is answered `100 Continue` once the head is accepted;
- over `max_connections` open connections, a new one is answered `busy_answer` and closed;
- `HttpServer.stop(grace)` stops listening, closes idle connections and lets requests in flight finish
  within `grace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httptools

from sentryroute_forwarder.receive.http_answer import Answer

__all__ = ["MAX_FIELD_BYTES", "MAX_HEAD_BYTES", "Exchange", "Handler", "HttpServer", "Request"]

log = logging.getLogger(__name__)

#: Longest request line or header field (name and value), as aiohttp and most servers allow.
MAX_FIELD_BYTES = 8190
#: Longest request head (request line and all headers).
MAX_HEAD_BYTES = 64 * 1024
#: Longest a client is read from after an answer that closes the connection, so that it sees the answer.
MAX_LINGER = 2.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(slots=True)
class Request:
    """The head of one request: method, path (without the query), HTTP version, headers by lower-case name
    (repeated ones joined with ", ") and whether the connection stays open after it."""

    method: str
    path: str
    version: bytes
    headers: dict[str, str]
    keep_alive: bool
    peername: Any  # the transport's `peername` extra info

    @property
    def content_type(self) -> str:
        """The media type of Content-Type, lower case, without parameters ("" without one)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None else None  # the parser has checked it is a number


class Exchange(Protocol):
    """The handling of one request whose head was accepted, until its answer."""

    def received(self, size: int) -> Answer | None:
        """`size` bytes of the body have arrived so far (not inflated); an Answer refuses the request and the
        rest of its body is not kept."""
        ...

    def complete(self, body: bytes) -> Answer | Awaitable[Answer]:
        """The whole body: the answer, or something to await for it."""
        ...

    def discard(self) -> None:
        """The request ends without `complete` (connection lost, timeout, malformed body): let go of it."""
        ...


class Handler(Protocol):
    def begin(self, request: Request) -> Exchange | Answer:
        """A request's head has arrived: an Exchange to receive its body, or an Answer refusing it now."""
        ...

    def refuse(self, request: Request | None, status: int, message: str) -> Answer:
        """The answer to an error found by the connection (malformed request, too slow, too large)."""
        ...


class _Incoming:
    """A request being received: its head, its exchange (None once answered early) and its body so far."""

    __slots__ = ("chunks", "exchange", "request", "size")

    def __init__(self, request: Request, exchange: Exchange | None) -> None:
        self.request = request
        self.exchange = exchange
        self.chunks: list[bytes] = []
        self.size = 0


class _Pending:
    """An answer in request order that is not ready yet (its exchange awaits something)."""

    __slots__ = ("close", "data")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.close = False


class HttpConnection(asyncio.Protocol):
    """One client connection: httptools parses, the handler answers, answers go out in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._handler = server.handler
        self._loop = server.loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peername: Any = None
        # the request being parsed: its URL and headers until the head is complete, then its _Incoming
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._in_head = False
        self._head_bytes = 0  # of the request line and the headers received whole
        self._read_in_head = 0
        self._incoming: _Incoming | None = None
        self._queue: deque[_Pending] = deque()  # answers waiting for an earlier one, in request order
        self._tasks: set[asyncio.Task[Answer]] = set()
        self._ending = False  # no more requests: close once the answers queued are out
        self._lingering = False  # an answer that closes went out: read and drop until the request ends
        self._write_paused = False
        self._deadline = 0.0  # when the request being received (or the idle connection) runs out of time
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._peername = transport.get_extra_info("peername")
        if not self._server.admit(self):
            transport.write(self._server.busy_answer)
            transport.close()
            return
        self._wait(self._server.read_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.forget(self)
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
        incoming, self._incoming = self._incoming, None
        if incoming is not None and incoming.exchange is not None:
            incoming.exchange.discard()
        # Exchanges awaiting something finish on their own (the data they took is accepted); nobody reads
        # their answers. Only shutdown cancels them (`abort`).

    def data_received(self, data: bytes) -> None:
        if self._ending and not self._lingering and self._incoming is None and not self._in_head:
            return  # the connection closes once its answers are out; no further request is read
        was_in_head = self._in_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._end()  # an Upgrade (h2c, websocket) is not offered: the answer given says HTTP/1.1, then close
            return
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._fail(400, f"malformed HTTP request: {exc.__context__}")
                return
            log.error("OTLP/HTTP request handling failed", exc_info=exc.__context__ or exc)
            self._fail(500, "internal error")
            return
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request: {_printable(str(exc))}")
            return
        # The parser keeps a header being received until it ends: bound that too (counting whole reads made
        # while in the head; the read it started in is at most one read's size).
        if not self._in_head:
            self._read_in_head = 0
        elif was_in_head:
            self._read_in_head += len(data)
            if self._read_in_head > MAX_HEAD_BYTES:
                self._fail(400, f"malformed HTTP request: Got more than {MAX_HEAD_BYTES} bytes of headers")

    def eof_received(self) -> bool | None:
        return None  # close our side too; answers already written still go out

    def pause_writing(self) -> None:
        """The client does not read its answers: stop reading its requests until it does."""
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None and not self._queue and not self._transport.is_closing():
            self._transport.resume_reading()  # (while an answer is awaited, reading stays paused: `_await`)

    # -- httptools callbacks --------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._fields = []
        self._head_bytes = 0
        self._deadline = self._loop.time() + self._server.read_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if len(self._url) > MAX_FIELD_BYTES:
            raise _HeadTooLarge(f"Got more than {MAX_FIELD_BYTES} bytes when reading the request line")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_FIELD_BYTES:
            raise _HeadTooLarge(f"Got more than {MAX_FIELD_BYTES} bytes when reading header {_printable(name)}")
        self._head_bytes += len(name) + len(value) + 4  # with ": " and CRLF, so tiny headers count as sent
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge(f"Got more than {MAX_HEAD_BYTES} bytes of headers")
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._ending:  # shutting down, or an answer closes the connection: no further request is taken
            if not self._queue:
                self._close()
            return
        parser = self._parser
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._fields:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = Request(
            method=parser.get_method().decode("ascii", "replace"),
            path=self._url.partition(b"?")[0].decode("latin-1"),
            version=parser.get_http_version().encode("ascii"),
            headers=headers,
            keep_alive=bool(parser.should_keep_alive()) and not self._ending,
            peername=self._peername,
        )
        if parser.should_upgrade():  # the parser would take the body for the new protocol's bytes
            refusal = self._handler.refuse(request, 400, "malformed HTTP request: protocol upgrades are not supported")
            refusal.close = True
            self._incoming = _Incoming(request, None)
            self._answer(request, refusal)
            return
        started = self._handler.begin(request)
        if isinstance(started, Answer):
            self._incoming = _Incoming(request, None)
            if headers.get("expect", "").lower() == "100-continue":
                started.close = True  # the client may never send the body it was not asked for
            self._answer(request, started)
            return
        self._incoming = _Incoming(request, started)
        if not self._queue and headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        incoming = self._incoming
        if incoming is None or incoming.exchange is None:
            return  # answered early (or lingering): dropped
        incoming.size += len(body)
        refusal = incoming.exchange.received(incoming.size)
        if refusal is not None:
            incoming.exchange, incoming.chunks = None, []
            self._answer(incoming.request, refusal)
            return
        incoming.chunks.append(body)

    def on_message_complete(self) -> None:
        incoming, self._incoming = self._incoming, None
        if incoming is None:
            return
        if self._lingering:
            self._close()
            return
        request, exchange = incoming.request, incoming.exchange
        if not request.keep_alive:
            self._ending = True
        if exchange is not None:
            body = b"".join(incoming.chunks)  # the one chunk itself when it came in one piece
            incoming.chunks = []
            try:
                result = exchange.complete(body)
            except BaseException:
                exchange.discard()  # an internal error must not keep its reservation and concurrency slot
                raise
            if isinstance(result, Answer):
                self._answer(request, result)
            else:
                self._await(request, result)
        if self._ending and not self._queue:
            self._close()
        elif not self._queue:
            self._deadline = self._loop.time() + self._server.read_timeout  # idle from now on

    # -- answers ----------------------------------------------------------------------------------------------

    def _answer(self, request: Request, answer: Answer) -> None:
        """Send `answer` now, or queue it behind answers not ready yet."""
        keep_alive = request.keep_alive and not answer.close and not self._ending
        data = answer.encode(request.version, keep_alive=keep_alive, head=request.method == "HEAD")
        if self._queue:
            pending = _Pending()
            pending.data, pending.close = data, not keep_alive
            self._queue.append(pending)
            if not keep_alive:
                self._ending = True
            return
        self._write(data, close=not keep_alive)

    def _await(self, request: Request, result: Awaitable[Answer]) -> None:
        """The exchange waits for something: its answer keeps its place in the queue; reading pauses, so
        pipelined requests do not pile up behind it."""
        pending = _Pending()
        self._queue.append(pending)
        if self._transport is not None:
            self._transport.pause_reading()
        task: asyncio.Task[Answer] = asyncio.ensure_future(result)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._answered(request, pending, done))

    def _answered(self, request: Request, pending: _Pending, task: asyncio.Task[Answer]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("OTLP/HTTP request failed", exc_info=error)
            answer = self._handler.refuse(request, 500, "internal error")
        else:
            answer = task.result()
        keep_alive = request.keep_alive and not answer.close and not self._ending
        pending.data = answer.encode(request.version, keep_alive=keep_alive, head=request.method == "HEAD")
        pending.close = not keep_alive
        self._flush()

    def _flush(self) -> None:
        """Write the answers that are ready, in order."""
        queue = self._queue
        while queue and queue[0].data is not None:
            pending = queue.popleft()
            assert pending.data is not None
            self._write(pending.data, close=pending.close)
            if pending.close:
                return
        if not queue:
            if self._ending and self._incoming is None:
                self._close()
                return
            self._deadline = max(self._deadline, self._loop.time() + self._server.read_timeout)
            if self._transport is not None and not self._write_paused and not self._transport.is_closing():
                self._transport.resume_reading()

    def _write(self, data: bytes, *, close: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(data)
        if close:
            self._queue.clear()
            self._ending = True
            if self._incoming is not None or self._in_head:
                # The rest of this request is still coming: read and drop it for a while, so that closing
                # with unread data does not reset the connection before the client has read the answer.
                self._lingering = True
                if self._timer is not None:
                    self._timer.cancel()
                self._wait(min(MAX_LINGER, self._server.read_timeout))
            else:
                self._close()

    # -- ending -------------------------------------------------------------------------------------------------

    def _fail(self, status: int, message: str) -> None:
        """An error in the request stream: answer it (after the answers queued) and close."""
        incoming, self._incoming = self._incoming, None
        self._in_head = False
        if incoming is not None and incoming.exchange is not None:
            incoming.exchange.discard()
        if self._lingering:
            self._close()
            return
        request = incoming.request if incoming is not None else None
        answer = self._handler.refuse(request, status, message)
        version = request.version if request is not None else b"1.1"
        data = answer.encode(version, keep_alive=False, head=request is not None and request.method == "HEAD")
        self._ending = True
        if self._queue:
            pending = _Pending()
            pending.data, pending.close = data, True
            self._queue.append(pending)
        elif self._transport is not None:
            self._transport.write(data)
            self._close()

    def _end(self) -> None:
        """No more requests on this connection: close once the answers queued are out."""
        self._ending = True
        if self._incoming is not None and self._incoming.exchange is not None:
            self._incoming.exchange.discard()
        self._incoming = None
        if not self._queue:
            self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def shut(self) -> None:
        """Shutdown: finish the request in progress, answer `Connection: close`, take no further request."""
        self._ending = True
        if self._incoming is None and not self._in_head and not self._queue:
            self._close()

    def abort(self) -> None:
        """Shutdown's grace is over: stop waiting for anything."""
        for task in list(self._tasks):
            task.cancel()
        if self._transport is not None:
            self._transport.abort()

    # -- time -------------------------------------------------------------------------------------------------

    def _wait(self, delay: float) -> None:
        self._deadline = self._loop.time() + delay
        self._timer = self._loop.call_at(self._deadline, self._check_time)

    def _check_time(self) -> None:
        """One timer per connection, re-armed when it fires early: requests only move `_deadline`."""
        now = self._loop.time()
        if now < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._check_time)
            return
        if self._queue:  # (never while lingering: an answer that closes empties the queue)
            # Answers being awaited (pacing, a disk write): not idle, and reading is paused by us, not by a
            # slow client, so the next request's clock starts again when reading resumes.
            self._wait(self._server.read_timeout)
            return
        if self._lingering or (self._incoming is None and not self._in_head):
            self._close()  # idle, or done lingering
            return
        incoming = self._incoming
        if incoming is None or incoming.exchange is None:
            self._end()  # a head that never ended, or a request answered early whose rest never came
            return
        timeout = self._server.read_timeout
        self._fail(408, f"request body not received within {timeout:g}s")

    def __repr__(self) -> str:
        return f"<HttpConnection {self._peername!r}>"


class _HeadTooLarge(Exception):
    """A request line or header over the limits (raised inside a parser callback, reported as malformed)."""


def _printable(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    return "".join(c if " " <= c <= "~" else " " for c in text).strip()[:200]


class HttpServer:
    """Listens, admits connections up to `max_connections` and stops gracefully."""

    def __init__(
        self,
        handler: Handler,
        *,
        read_timeout: float,
        max_connections: int,
        busy_answer: bytes,
        on_busy: Callable[[], None],
    ) -> None:
        self.handler = handler
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.busy_answer = busy_answer
        self._on_busy = on_busy
        self.loop = asyncio.get_running_loop()
        self._connections: set[HttpConnection] = set()
        self._server: asyncio.Server | None = None
        self._all_closed: asyncio.Event | None = None

    async def start(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None) -> int:
        """Listen on `host`:`port` (0: a free port); returns the port bound."""
        self._server = await self.loop.create_server(
            lambda: HttpConnection(self),
            host,
            port,
            ssl=ssl_context,
            backlog=128,
            # A client that connects and never completes the handshake is not yet a connection (not counted
            # by `max_connections`): it gets `read_timeout`, not asyncio's 60 s.
            ssl_handshake_timeout=self.read_timeout if ssl_context is not None else None,
        )
        return int(self._server.sockets[0].getsockname()[1])

    def admit(self, connection: HttpConnection) -> bool:
        if len(self._connections) >= self.max_connections:
            self._on_busy()
            return False
        self._connections.add(connection)
        return True

    def forget(self, connection: HttpConnection) -> None:
        self._connections.discard(connection)
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    async def stop(self, grace: float) -> None:
        """Stop listening; idle connections close now, those with requests in flight within `grace`."""
        if self._server is not None:
            self._server.close()
        self._all_closed = asyncio.Event()
        for connection in list(self._connections):
            connection.shut()
        if self._connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._all_closed.wait()
        for connection in list(self._connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()

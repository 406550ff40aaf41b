"""One keep-alive HTTP/1.1 connection to an ingest host: a request out, its answer parsed by httptools.

The answer is parsed as it arrives (llhttp, through httptools: the parser the receivers use): no task,
StreamReader or response object per request. What it keeps of an answer: the status, the headers (a
case-insensitive mapping; repeated ones joined with ", "), and the first `MAX_ANSWER_BODY` bytes of the body,
gzip or deflate decoded. The rest of a body is read and dropped up to `MAX_DRAIN_BYTES`; past that the answer
is taken as it is and the connection closed. Content-Length, chunked and close-delimited bodies; interim (1xx)
answers are skipped.

Once the head of a final answer is in, its status is the answer: a body cut short by the connection closing,
by a framing error or by a timeout is only a shorter excerpt (the batch was taken or refused all the same;
calling it a transport error would send a delivered batch again).

The connection is reusable after an answer only if it was complete, HTTP/1.1, not `Connection: close`, and
the request had been written whole: an answer that came while the request was still being written (the
server answered early, without reading the rest) leaves unsent bytes that would go before the next request,
so that connection is dropped with them.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterator, Mapping

import httptools

__all__ = ["MAX_ANSWER_BODY", "MAX_DRAIN_BYTES", "Answer", "Connection", "ConnectionLost", "Headers", "MalformedAnswer"]

#: How much of an answer body is kept (for a log excerpt); Sentry's are a short JSON `detail`.
MAX_ANSWER_BODY = 4096
#: How much of an answer body is read at most (the rest dropped) before the connection is given up instead.
MAX_DRAIN_BYTES = 64 * 1024
#: Longest answer head (status line and headers) taken.
MAX_HEAD_BYTES = 64 * 1024


class Headers(Mapping[str, str]):
    """An answer's headers by case-insensitive name."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items  # by lower-case name

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Answer:
    """An HTTP answer as the connection got it."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class ConnectionLost(Exception):
    """The connection closed before the answer's head was complete. `answer_started`: some of it had arrived."""

    def __init__(self, message: str, *, answer_started: bool) -> None:
        super().__init__(message)
        self.answer_started = answer_started


class MalformedAnswer(Exception):
    """The server's bytes are not an HTTP/1.x answer (or one over the limits)."""


class Connection(asyncio.Protocol):
    """A connection of the pool: `send` writes a request and returns the future of its answer."""

    def __init__(self, origin: tuple[str, str, int], on_lost: Callable[[Connection], None]) -> None:
        self.origin = origin
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.counted = False  # holds a slot of the pool's limits (from when the pool has it, until it is lost)
        self.idle_since = 0.0
        self.reusable = False  # the last answer was complete and allows another request
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._started = False  # a byte of the current answer has arrived
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._before_head = 0  # bytes received for the current request before its final head was complete
        self._status = 0
        self._headers: Headers | None = None  # set once the head of a final answer is complete
        self._body = bytearray()
        self._decoder: zlib._Decompress | None = None
        self._drained = 0  # body bytes received, as sent
        self._until_eof = False  # the body ends when the connection closes

    # -- the pool's side ------------------------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> asyncio.Future[Answer]:
        """Write one request; the future gets its answer, or ConnectionLost / MalformedAnswer."""
        transport = self.transport
        assert transport is not None and self._waiter is None
        self.reusable = False
        self._started = False
        self._headers = None
        self._before_head = 0
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        if self.closed:  # lost between being handed out and this request
            self._waiter = None
            waiter.set_exception(ConnectionLost("connection closed before an answer", answer_started=False))
            return waiter
        if len(body) <= 16 * 1024:
            transport.write(head + body)  # one segment for small requests
        else:
            transport.write(head)
            transport.write(body)
        return waiter

    @property
    def has_head(self) -> bool:
        """The head of the current answer has arrived (a status is known)."""
        return self._headers is not None

    def partial_answer(self) -> Answer:
        """What arrived of an answer whose head is in (its body cut short, or ended by closing)."""
        assert self._headers is not None
        return Answer(self._status, self._headers, self._body_text())

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol -------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if self._headers is not None:  # the body ends here (delimited by closing) or was cut short
                waiter.set_result(self.partial_answer())
            else:
                what = "during the answer" if self._started else "before an answer"
                waiter.set_exception(ConnectionLost(f"connection closed {what}", answer_started=self._started))
        self._on_lost(self)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted for the next request
            return
        self._started = True
        if self._headers is None:
            # httptools keeps a header in its own buffer until the header ends (on_header sees it whole): an
            # endless one must be cut off here, before the parser holds it. (At most one more read past the bound.)
            if self._before_head > MAX_HEAD_BYTES:
                self._fail(MalformedAnswer(f"answer head over {MAX_HEAD_BYTES} bytes"))
                return
            self._before_head += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._fail(MalformedAnswer(str(exc.__context__ or exc)))
        except httptools.HttpParserError as exc:
            self._fail(MalformedAnswer(f"malformed HTTP answer: {_printable(str(exc))}"))

    def eof_received(self) -> bool | None:
        return None  # close; connection_lost settles the answer

    # -- httptools callbacks ----------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:
            raise MalformedAnswer("an answer to no request")
        self._fields = []
        self._head_bytes = 0
        self._body = bytearray()
        self._decoder = None
        self._drained = 0
        self._until_eof = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise MalformedAnswer(f"answer head over {MAX_HEAD_BYTES} bytes")
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status == 101:  # (llhttp would stop parsing here, and httptools raise HttpParserUpgrade)
            raise MalformedAnswer("a 101 answer: an upgrade nobody asked for")
        if 100 <= status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the final one follows
        items: dict[str, str] = {}
        for raw_name, raw_value in self._fields:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            items[name] = f"{items[name]}, {value}" if name in items else value
        self._status = status
        self._headers = Headers(items)
        encoding = items.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS)
        self._until_eof = (
            "content-length" not in items
            and "chunked" not in items.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )

    def on_body(self, chunk: bytes) -> None:
        if self._headers is None:
            return  # (an interim answer has no body)
        self._drained += len(chunk)
        room = MAX_ANSWER_BODY - len(self._body)
        if room > 0:
            if self._decoder is None:
                self._body += chunk[:room]
            else:
                try:
                    self._body += self._decoder.decompress(chunk, room)
                except zlib.error:
                    self._decoder = None  # not what it says it is: kept as sent (an excerpt sanitises it)
                    self._body += chunk[:room]
        if self._drained > MAX_DRAIN_BYTES:
            self._settle(reusable=False)
            self.abort()

    def on_message_complete(self) -> None:
        if self._headers is None:
            return  # the end of an interim answer
        transport = self.transport
        assert transport is not None
        if transport.get_write_buffer_size():  # answered before the request was written whole: see the docstring
            self._settle(reusable=False)
            self.abort()  # (a graceful close would wait for the server to read what it does not want)
            return
        reusable = bool(self._parser.should_keep_alive()) and self._parser.get_http_version() == "1.1"
        self._settle(reusable=reusable)
        if not reusable:
            self.close()

    # -- internals ---------------------------------------------------------------------------------------------

    def _settle(self, *, reusable: bool) -> None:
        waiter, self._waiter = self._waiter, None
        assert self._headers is not None
        self.reusable = reusable and not self.closed
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._status, self._headers, self._body_text()))

    def _body_text(self) -> bytes:
        return bytes(self._body)

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if self._headers is not None:  # a broken body after a final head: the status is still the answer
                waiter.set_result(self.partial_answer())
            else:
                waiter.set_exception(error)
        self.abort()


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" else " " for c in text).strip()[:200]

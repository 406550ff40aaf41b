"""A whole HTTP/1.x answer of the OTLP/HTTP receiver, encoded by hand and written to the socket in one write.

aiohttp's `web.Response` builds a header multidict, parses its own Content-Type, adds a Server header and
serializes it all again for every answer: about 6 % of an SDK-sized request (measured with py-spy). The
receiver's answers are small and fully known up front, so `Answer` stands in for it: aiohttp's connection
loop only calls `prepare` and `write_eof` and reads `keep_alive` afterwards.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from email.utils import formatdate
from http import HTTPStatus

from aiohttp.web_request import BaseRequest

__all__ = ["Answer"]


class Answer:
    """`status` with `body` of `content_type` and `headers` (internal values only: never a client's text).

    Keep-alive follows the request (HTTP/1.1 unless `Connection: close`, HTTP/1.0 with `keep-alive`), as with
    aiohttp; `close=True` ends the connection after the answer (the rest of a body was not read).
    """

    __slots__ = ("_body", "_fields", "_status", "keep_alive")

    def __init__(
        self,
        status: int,
        content_type: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        self._status = status
        self._body = body
        fields = _fixed_fields(status, content_type, len(body))
        if headers:
            fields += "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        self._fields = fields
        self.keep_alive: bool | None = False if close else None

    async def prepare(self, request: BaseRequest) -> None:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client has gone")  # aiohttp's loop ends the connection quietly
        if self.keep_alive is None:
            self.keep_alive = request.keep_alive
        major, minor = request.version
        if self.keep_alive:
            connection = b"Connection: keep-alive\r\n" if (major, minor) == (1, 0) else b""
        else:
            connection = b"Connection: close\r\n"
        status_line = b"HTTP/%d.%d " % (major, minor)
        body = b"" if request.method == "HEAD" else self._body  # a HEAD answer has the headers only (RFC 9110)
        transport.write(b"".join((status_line, self._fields, _date(), connection, b"\r\n", body)))
        # A client that sends (pipelines) but does not read its answers: wait while the socket's send buffer is
        # over its high-water mark, as aiohttp's own writer does, so unread answers cannot pile up.
        await request.writer.drain()

    async def write_eof(self) -> None:
        """Everything went out with `prepare`."""


@functools.lru_cache(maxsize=256)
def _fixed_fields(status: int, content_type: str, length: int) -> bytes:
    """Status code and reason, Content-Type and Content-Length: the same for most answers."""
    phrase = HTTPStatus(status).phrase
    return f"{status} {phrase}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n".encode("latin-1")


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    """The `Date` header line, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii"))
    return _date_cache[1]

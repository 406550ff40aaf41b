"""A whole HTTP/1.x answer of the OTLP/HTTP receiver, encoded by hand and written to the socket in one write.

The receiver's answers are small and fully known up front: status, Content-Type, Content-Length, a few fixed
headers of our own (never a client's text) and the body. The status, Content-Type and Content-Length lines
are cached; the status line, `Connection` and whether a body follows depend on the request.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from email.utils import formatdate
from http import HTTPStatus

__all__ = ["Answer"]


class Answer:
    """`status` with `body` of `content_type` and `headers` (internal values only: never a client's text).

    `close=True` ends the connection after the answer (the rest of a body was not read); otherwise keep-alive
    follows the request (HTTP/1.1 unless `Connection: close`, HTTP/1.0 with `keep-alive`).
    """

    __slots__ = ("_body", "_fields", "close")

    def __init__(
        self,
        status: int,
        content_type: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        self._body = body
        fields = _fixed_fields(status, content_type, len(body))
        if headers:
            fields += "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        self._fields = fields
        self.close = close

    def encode(self, version: bytes, *, keep_alive: bool, head: bool) -> bytes:
        """The answer as sent to a `version` (b"1.1", b"1.0") request; `head`: a HEAD request gets the headers
        only (RFC 9110), so the next answer on a kept-alive connection is not taken for this one's body."""
        if keep_alive:
            connection = b"Connection: keep-alive\r\n" if version == b"1.0" else b""
        else:
            connection = b"Connection: close\r\n"
        body = b"" if head else self._body
        return b"".join((b"HTTP/", version, b" ", self._fields, _date(), connection, b"\r\n", body))


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

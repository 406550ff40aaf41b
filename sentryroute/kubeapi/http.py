"""The HTTP/1.1 under `KubeClient`: one connection per call on asyncio streams, the answer parsed by httptools.

Why not aiohttp's client: in the forwarder, whose memory is bounded, the Pod and ConfigMap watches were the
only reason it imported aiohttp (8.4 MB resident, 91 modules; the receivers and the export client are on
httptools already). The calls are few — a paged list, a watch held open for minutes, a rare get or patch — so
a connection per call costs nothing measurable and leaves no pool to manage.

What it does: TLS with the `ApiAccess` context (SNI and hostname check by the server's name; the default
context for https without one), `Connection: close`, Content-Length, chunked and close-delimited answers,
the body read whole or chunk by chunk as it arrives (a watch). No redirects, no proxies from the environment
and no compression asked for (as the aiohttp client was used). Every transport failure is `HttpError`, an
`OSError`; timeouts are `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlencode, urlsplit

import httptools

__all__ = ["HttpError", "Response", "open_request"]

#: Longest answer head (status line and headers) taken.
MAX_HEAD_BYTES = 64 * 1024
_READ_SIZE = 256 * 1024


class HttpError(ConnectionError):
    """No usable answer: the connection failed, broke or carried something that is not HTTP/1.1."""


class Response:
    """An answer whose head has arrived; its body is read with `read` or `chunks` (once)."""

    def __init__(self, reader: asyncio.StreamReader, read_timeout: float | None) -> None:
        self._reader = reader
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._pending: deque[bytes] = deque()
        self._head_done = False
        self._complete = False
        self._head_bytes = 0
        self.status = 0
        self.headers: dict[str, str] = {}  # by lower-case name

    # -- httptools callbacks ----------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._pending.append(bytes(body))

    def on_message_complete(self) -> None:
        self._complete = True

    # -- reading ------------------------------------------------------------------------------------------

    async def read_head(self) -> None:
        while not self._head_done:
            self._head_bytes += await self._feed()
            if self._head_bytes > MAX_HEAD_BYTES and not self._head_done:
                raise HttpError(f"answer head longer than {MAX_HEAD_BYTES} bytes")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked transfer decoded)."""
        while True:
            while self._pending:
                yield self._pending.popleft()
            if self._complete:
                return
            await self._feed()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def _feed(self) -> int:
        async with asyncio.timeout(self._read_timeout):
            data = await self._reader.read(_READ_SIZE)
        if not data:
            if self._head_done and "content-length" not in self.headers and "transfer-encoding" not in self.headers:
                self._complete = True  # a close-delimited body ends here
                return 0
            raise HttpError("the server closed the connection before the answer was complete")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise HttpError("the server switched protocols") from None
        except httptools.HttpParserError as exc:
            if not self._complete:  # bytes after a complete answer on a closing connection do not matter
                raise HttpError(f"malformed answer: {exc}") from None
        return len(data)


@asynccontextmanager
async def open_request(
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str],
    body: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float,
    read_timeout: float | None,
) -> AsyncIterator[Response]:
    """Send one request on a new connection; the answer once its head has arrived. `read_timeout` bounds each
    read (None: none); the connection is closed when the block ends."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {url[:200]!r}")
    tls = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "") + (f"?{urlencode(params)}" if params else "")
    lines = [f"{method} {target or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    if any(c in line for line in lines for c in "\r\n") or " " in (target or "/"):
        raise ValueError("a request line or header would break the request (CR, LF or a space in the path)")
    async with asyncio.timeout(connect_timeout):
        reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=tls, server_hostname=parts.hostname if tls else None, limit=_READ_SIZE
        )
    try:
        writer.write(head.encode("latin-1") + (body or b""))
        async with asyncio.timeout(read_timeout):
            await writer.drain()
        response = Response(reader, read_timeout)
        await response.read_head()
        yield response
    finally:
        writer.close()

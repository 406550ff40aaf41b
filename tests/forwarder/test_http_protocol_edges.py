"""Edge cases of the OTLP/HTTP receiver's own HTTP/1.1 server (receive/http_protocol.py), driven over raw sockets
with a small handler whose answers the test controls: an exchange that fails inside `complete` is still let
go of, a request we stopped reading (an answer being awaited) is not timed out as if the client were slow, and
a TLS client that never finishes its handshake is dropped after the read timeout."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable

import pytest
from sentryroute_forwarder.receive.http_answer import Answer
from sentryroute_forwarder.receive.http_protocol import HttpServer, Request

from tests.forwarder.test_receive_limits import closed_by_server, read_answer
from tests.forwarder.test_receive_security import pki, server_files  # noqa: F401  (fixtures)


class _Exchange:
    def __init__(self, handler: _Handler, request: Request) -> None:
        self._handler = handler
        self._request = request

    def received(self, size: int) -> Answer | None:
        return None

    def complete(self, body: bytes) -> Answer | Awaitable[Answer]:
        if self._request.path == "/fail":
            raise RuntimeError("an internal error")
        if self._request.path == "/wait":
            return self._after_release()
        if self._request.path == "/big":
            return Answer(200, "text/plain", b"b" * (4 << 20))  # more than the transport's write buffer holds
        return Answer(200, "text/plain", body)

    async def _after_release(self) -> Answer:
        await self._handler.release.wait()
        return Answer(200, "text/plain", b"waited")

    def discard(self) -> None:
        self._handler.discarded += 1


async def _begun(handler: _Handler, paths: list[str], *, within: float = 10) -> None:
    async with asyncio.timeout(within):
        while handler.begun != paths:
            handler.began.clear()
            await handler.began.wait()


class _Handler:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.discarded = 0
        self.refused: list[int] = []
        self.begun: list[str] = []
        self.began = asyncio.Event()

    def begin(self, request: Request) -> _Exchange | Answer:
        self.begun.append(request.path)
        self.began.set()
        return _Exchange(self, request)

    def refuse(self, request: Request | None, status: int, message: str) -> Answer:
        self.refused.append(status)
        return Answer(status, "text/plain", message.encode(), close=status in (408, 413))


async def _serve(
    handler: _Handler, *, read_timeout: float, context: ssl.SSLContext | None = None
) -> tuple[HttpServer, int]:
    server = HttpServer(handler, read_timeout=read_timeout, max_connections=8, busy_answer=b"", on_busy=lambda: None)
    return server, await server.start("127.0.0.1", 0, ssl_context=context)


def _post(path: str, body: bytes = b"x") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)


async def test_an_exchange_that_fails_in_complete_is_discarded(caplog):
    """An internal error (a bug, a stale compiled module) is a 500, and the exchange still lets go of its
    reservation and concurrency slot: otherwise every such request leaks one until all are 429/503."""
    handler = _Handler()
    server, port = await _serve(handler, read_timeout=10)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_post("/fail"))
        async with asyncio.timeout(10):
            assert (await read_answer(reader))[0] == 500
        writer.close()
    finally:
        await server.stop(1)
    assert handler.discarded == 1


async def test_a_request_behind_an_awaited_answer_is_not_timed_out():
    """While an answer is awaited, reading is paused by the server: the pipelined request behind it gets its
    --read-timeout again once reading resumes, not a 408 for the time the server was not reading."""
    handler = _Handler()
    read_timeout = 0.2
    server, port = await _serve(handler, read_timeout=read_timeout)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        second = _post("/ok", b"0123456789")
        writer.write(_post("/wait") + second[:-5])  # the second request's body is not whole yet
        async with asyncio.timeout(10):
            await _begun(handler, ["/wait", "/ok"])
        writer.write(second[-5:])  # the client sends the rest at once; the server is not reading
        await writer.drain()
        await asyncio.sleep(3 * read_timeout)  # the second request's deadline goes by while the server holds it
        handler.release.set()
        async with asyncio.timeout(10):
            first, second_answer = await read_answer(reader), await read_answer(reader)
        writer.close()
    finally:
        await server.stop(1)
    assert (first[0], first[2]) == (200, b"waited")
    assert (second_answer[0], second_answer[2]) == (200, b"0123456789")
    assert handler.refused == []


async def test_reading_stays_paused_while_an_answer_is_awaited_even_when_writing_resumes():
    """A client that stopped reading (write back-pressure) and then reads again must not resume the reading
    paused for an awaited answer: requests would pile up, accepted, behind it."""
    handler = _Handler()
    server, port = await _serve(handler, read_timeout=10)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_post("/big") + _post("/wait"))
        async with asyncio.timeout(10):
            await _begun(handler, ["/big", "/wait"])
            big = await read_answer(reader)  # writing resumes on the server
        assert big[0] == 200
        writer.write(_post("/ok"))
        await writer.drain()
        with contextlib.suppress(TimeoutError):  # time for the server to read it, were it reading
            await _begun(handler, ["/big", "/wait", "/ok"], within=0.3)
        assert handler.begun == ["/big", "/wait"]
        handler.release.set()
        async with asyncio.timeout(10):
            assert (await read_answer(reader))[2] == b"waited"
            assert (await read_answer(reader))[2] == b"x"
        writer.close()
    finally:
        await server.stop(1)


async def test_a_tls_client_that_never_finishes_its_handshake_is_dropped(pki, server_files):  # noqa: F811
    cert, key = server_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server, port = await _serve(_Handler(), read_timeout=0.2, context=context)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # plain TCP: no ClientHello ever
        assert await closed_by_server(reader, within=10)  # asyncio's default would hold it 60 s
        writer.close()
    finally:
        await server.stop(1)


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello"])
async def test_tls_garbage_instead_of_a_hello_is_closed(pki, server_files, garbage):  # noqa: F811
    cert, key = server_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server, port = await _serve(_Handler(), read_timeout=0.2, context=context)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(garbage)
        assert await closed_by_server(reader, within=10)
        writer.close()
    finally:
        await server.stop(1)

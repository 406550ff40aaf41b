"""The OTLP/HTTP receiver's own HTTP/1.1 server (receive/http_protocol.py) over raw sockets: chunked bodies,
Expect: 100-continue, head limits, upgrades refused, idle connections, answers that wait (a disk queue's fsync) kept
in request order, and shutdown."""

from __future__ import annotations

import asyncio

import pytest
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.receive.http_protocol import MAX_FIELD_BYTES, MAX_HEAD_BYTES

from tests.forwarder.support import local_settings
from tests.forwarder.test_receive_limits import VALID, closed_by_server, exchange, head, read_answer, rpc_status

LIMIT = 64 * 1024


@pytest.fixture
async def running(routes_path, fake_pipeline):
    settings = local_settings(routes_path, max_request_bytes=LIMIT, read_timeout=1.0)
    async with Forwarder(settings, pipeline=fake_pipeline) as forwarder:
        yield forwarder


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


async def test_chunked_bodies_are_joined_and_bounded(running, fake_pipeline):
    status, _, _ = await exchange(running.http_port, head(None, "Transfer-Encoding: chunked") + chunked(VALID, 7))
    assert status == 200
    assert [part.payload for part in fake_pipeline.parts] == [VALID]
    # Over --max-request-bytes while arriving: 413 and the connection closes
    reader, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    try:
        writer.write(head(None, "Transfer-Encoding: chunked") + chunked(b"x" * (LIMIT + 1), 4096))
        async with asyncio.timeout(10):
            status, headers, body = await read_answer(reader)
        assert status == 413
        assert headers["connection"] == "close"
        assert f"larger than {LIMIT} bytes" in rpc_status(headers, body).message
        assert await closed_by_server(reader, within=5)
    finally:
        writer.close()


async def test_expect_100_continue(running, fake_pipeline):
    reader, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    try:
        writer.write(head(len(VALID), "Expect: 100-continue"))
        async with asyncio.timeout(10):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(VALID)
            assert (await read_answer(reader))[0] == 200
        # Refused on its head: the final answer instead of 100, and the connection closes (the body may never come)
        writer.write(head(len(VALID), "Expect: 100-continue").replace(b"x-protobuf", b"xml"))
        async with asyncio.timeout(10):
            status, headers, _ = await read_answer(reader)
        assert (status, headers["connection"]) == (415, "close")
        assert await closed_by_server(reader, within=5)
    finally:
        writer.close()
    assert len(fake_pipeline.parts) == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/traces?" + b"q" * MAX_FIELD_BYTES + b" HTTP/1.1\r\n\r\n",
        head(len(VALID), *(f"X-Many-{i}: {'v' * 1000}" for i in range(MAX_HEAD_BYTES // 1000 + 1))) + VALID,
    ],
    ids=["request-line", "head"],
)
async def test_oversized_heads_are_400(running, request_bytes):
    reader, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    try:
        for start in range(0, len(request_bytes), 1000):  # in pieces, as a slow client sends them
            writer.write(request_bytes[start : start + 1000])
            await writer.drain()
        async with asyncio.timeout(10):
            status, headers, body = await read_answer(reader)
    finally:
        writer.close()
    assert status == 400
    assert "Got more than" in rpc_status(headers, body).message


async def test_a_head_of_many_tiny_headers_in_one_write_is_400(running):
    """Each header counts with its separators: 12,000 headers of `a: b` (72 KB, read at once) are over the
    64 KiB head limit, though their names and values alone are 24 KB."""
    reader, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    try:
        writer.write(head(len(VALID), *(["a: b"] * 12_000)) + VALID)
        async with asyncio.timeout(10):
            status, headers, body = await read_answer(reader)
    finally:
        writer.close()
    assert status == 400
    assert f"Got more than {MAX_HEAD_BYTES} bytes of headers" in rpc_status(headers, body).message


async def test_protocol_upgrades_are_refused(running, fake_pipeline):
    """An Upgrade (h2c) would make the parser take the body for the new protocol's bytes: refused and closed,
    never answered 200 for a body that was not read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    try:
        writer.write(head(len(VALID), "Connection: Upgrade", "Upgrade: h2c") + VALID)
        async with asyncio.timeout(10):
            status, headers, body = await read_answer(reader)
        assert (status, headers["connection"]) == (400, "close")
        assert "upgrades are not supported" in rpc_status(headers, body).message
        assert await closed_by_server(reader, within=5)
    finally:
        writer.close()
    assert fake_pipeline.parts == []


async def test_idle_connections_close_after_the_read_timeout(running):
    reader, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    try:
        writer.write(head(len(VALID)) + VALID)
        async with asyncio.timeout(10):
            assert (await read_answer(reader))[0] == 200
        assert await closed_by_server(reader, within=10)  # --read-timeout 1s after the answer
    finally:
        writer.close()


async def test_answers_that_wait_keep_their_order(tmp_path, routes_path):
    """With --queue-fsync an answer waits for the disk: pipelined requests are still answered in order, and a
    refusal found at once (a wrong method) waits its turn."""
    settings = local_settings(routes_path, queue_dir=tmp_path / "queue", queue_fsync=True)
    async with Forwarder(settings) as forwarder:
        reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.http_port)
        try:
            get = b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n"
            writer.write(head(len(VALID)) + VALID + get + head(len(VALID)) + VALID)
            async with asyncio.timeout(10):
                answers = [await read_answer(reader) for _ in range(3)]
        finally:
            writer.close()
    assert [status for status, _, _ in answers] == [200, 405, 200]


async def test_shutdown_closes_idle_connections_and_answers_requests_in_flight(routes_path, fake_pipeline):
    settings = local_settings(routes_path, read_timeout=30.0, shutdown_timeout=20.0)
    forwarder = Forwarder(settings, pipeline=fake_pipeline)
    await forwarder.start()
    try:
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", forwarder.http_port)
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", forwarder.http_port)
        idle_writer.write(head(len(VALID)) + VALID)
        async with asyncio.timeout(10):
            assert (await read_answer(idle_reader))[0] == 200
        busy_writer.write(head(len(VALID)) + VALID[:10])  # a request in flight: its body is still coming
        await busy_writer.drain()
        stopping = asyncio.ensure_future(forwarder.stop())
        assert await closed_by_server(idle_reader, within=10)
        busy_writer.write(VALID[10:])
        async with asyncio.timeout(10):
            status, headers, _ = await read_answer(busy_reader)
        assert (status, headers["connection"]) == (200, "close")
        await stopping
    finally:
        await forwarder.stop()
        idle_writer.close()
        busy_writer.close()
    assert len(fake_pipeline.parts) == 2

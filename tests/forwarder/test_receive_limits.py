"""Receiver limits over raw sockets: errors aiohttp detects itself, bodies reserved before they are read,
connection and concurrency caps, gzip member walking — each answered with a google.rpc.Status."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import pytest
from google.rpc import code_pb2, status_pb2
from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.receive.inflate import MAX_GZIP_MEMBERS

from tests.forwarder.support import local_settings, metric_value, resource_spans, traces_request, wait_until

VALID = traces_request(resource_spans("orders")).SerializeToString()


def head(content_length: int | None = None, *extra: str, path: str = "/v1/traces") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/x-protobuf", *extra]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(port: int, data: bytes, *, within: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send `data`, read one HTTP answer (the server closes after it, or sends Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(within):
            return await read_answer(reader)
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line, headers, body = await read_whole_answer(reader)
    return int(status_line.split()[1]), headers, body


async def read_whole_answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """The status line as sent, the headers (lower-case names) and the body of one answer."""
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status_line, headers, body


def rpc_status(headers: dict[str, str], body: bytes) -> status_pb2.Status:
    assert headers["content-type"] == "application/x-protobuf"
    return status_pb2.Status.FromString(body)


@pytest.fixture
async def limited(routes_path, fake_pipeline):
    settings = local_settings(
        routes_path, max_request_bytes=64 * 1024, read_timeout=2.0, max_connections=3, max_concurrent_requests=1
    )
    async with Forwarder(settings, pipeline=fake_pipeline) as running:
        yield running


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (head(None, "Content-Length: 5", "Content-Length: 7") + b"x" * 5, "Content-Length"),
        (head(5, "Transfer-Encoding: chunked") + b"0\r\n\r\n", "Transfer-Encoding"),
        (head(5, "X-Long: " + "a" * 20_000) + b"x" * 5, "Got more than"),
        (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n", "header"),
        (b"GARBAGE\x00\xff\r\n\r\n", "malformed HTTP request"),
    ],
    ids=["duplicate-content-length", "content-length-and-chunked", "oversized-header", "bad-header", "not-http"],
)
async def test_errors_aiohttp_detects_are_a_status(limited, request_bytes, reason):
    status, headers, body = await exchange(limited.http_port, request_bytes)
    assert status == 400
    message = rpc_status(headers, body)
    assert message.code == code_pb2.INVALID_ARGUMENT
    assert message.message.startswith("malformed HTTP request")
    assert reason.lower() in message.message.lower()
    assert metric_value(limited, "sentryroute_rejected_requests_total", {"code": "400"}) == 1


async def test_a_body_that_cannot_fit_is_refused_before_it_is_read(tmp_path, routes_path):
    settings = local_settings(routes_path, max_bytes=100_000, max_request_bytes=1 << 20, retry_after=2.0)
    async with Forwarder(settings) as forwarder:
        # Only the headers are sent: the answer comes at once, without waiting for the 200 kB body.
        status, headers, body = await exchange(forwarder.http_port, head(200_000))
        assert status == 429
        assert 2 <= int(headers["retry-after"]) <= 3  # --retry-after, plus jitter
        assert "queue is full" in rpc_status(headers, body).message
        # While one request holds its reservation (headers sent, body pending), another that would not fit
        # beside it is refused; one that fits is served.
        _, writer = await asyncio.open_connection("127.0.0.1", forwarder.http_port)
        writer.write(head(60_000))
        await writer.drain()
        await wait_for_metric(forwarder, "sentryroute_receiving_bytes", 60_000)
        status, _, _ = await exchange(forwarder.http_port, head(50_000))
        assert status == 429
        status, _, _ = await exchange(forwarder.http_port, head(len(VALID)) + VALID)
        assert status == 200
        writer.close()
        await wait_for_metric(forwarder, "sentryroute_receiving_bytes", 0)


async def wait_for_metric(forwarder, name: str, value: float) -> None:
    await wait_until(lambda: metric_value(forwarder, name) == value, what=f"{name} == {value}")


async def test_connections_over_the_cap_get_503_and_are_closed(limited):
    idle = [await asyncio.open_connection("127.0.0.1", limited.http_port) for _ in range(3)]
    try:
        for reader, writer in idle:  # an answer on each proves the server registered it; it stays open (keep-alive)
            writer.write(head(len(VALID)) + VALID)
            async with asyncio.timeout(10):
                assert (await read_answer(reader))[0] == 200
        status, headers, body = await exchange(limited.http_port, head(len(VALID)) + VALID)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert "too many open connections" in rpc_status(headers, body).message
    finally:
        for _, writer in idle:
            writer.close()
    # Once they are gone, a new connection is served.

    async def served() -> bool:
        return (await exchange(limited.http_port, head(len(VALID)) + VALID))[0] == 200

    await wait_until(served, what="a new connection served")


async def test_requests_over_the_concurrency_cap_get_429(limited):
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.http_port)
    try:
        writer.write(head(len(VALID)) + VALID[:10])  # in progress: waiting for the rest of its body
        await writer.drain()
        answers = []

        async def refused() -> bool:
            answers.append(await exchange(limited.http_port, head(len(VALID)) + VALID))
            return answers[-1][0] == 429

        await wait_until(refused, what="a 429 while the first request is in progress")
        _, headers, body = answers[-1]
        assert "too many requests in progress" in rpc_status(headers, body).message
        writer.write(VALID[10:])
        await writer.drain()
        async with asyncio.timeout(10):
            assert (await read_answer(reader))[0] == 200
    finally:
        writer.close()


async def test_many_gzip_members_are_refused_quickly(limited):
    members = gzip.compress(b"", mtime=0) * 50_000  # ~1 MB: more members than allowed, within the size limit
    started = time.monotonic()
    extra = "Content-Encoding: gzip"
    status, headers, body = await exchange(limited.http_port, head(len(members), extra) + members)
    # The body is over the 64 KiB limit, so this is a 413 before inflating; below it, the member cap answers.
    assert status == 413
    small = gzip.compress(b"", mtime=0) * (MAX_GZIP_MEMBERS + 1)
    status, headers, body = await exchange(limited.http_port, head(len(small), extra) + small)
    assert status == 400
    assert f"more than {MAX_GZIP_MEMBERS} members" in rpc_status(headers, body).message
    assert time.monotonic() - started < 5


async def test_concatenated_gzip_members_are_one_body(limited, fake_pipeline):
    half = len(VALID) // 2
    body = gzip.compress(VALID[:half]) + gzip.compress(VALID[half:])
    status, _, _ = await exchange(limited.http_port, head(len(body), "Content-Encoding: gzip") + body)
    assert status == 200
    assert [part.payload for part in fake_pipeline.parts] == [VALID]


async def test_json_over_its_own_limit_is_413(routes_path, fake_pipeline):
    settings = local_settings(routes_path, max_json_bytes=1024)
    async with Forwarder(settings, pipeline=fake_pipeline) as forwarder:
        body = b'{"resourceSpans": []}' + b" " * 2000
        data = head(len(body)).replace(b"application/x-protobuf", b"application/json") + body
        status, _, answer = await exchange(forwarder.http_port, data)
        assert status == 413
        assert "OTLP/JSON body is larger than 1024 bytes" in json.loads(answer)["message"]


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (frames it sends are read and ignored)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    return True


async def test_idle_grpc_connections_are_closed_after_the_read_timeout(routes_path, fake_pipeline):
    async with Forwarder(local_settings(routes_path, read_timeout=0.5), pipeline=fake_pipeline) as forwarder:
        reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.grpc_port)
        try:
            writer.write(HTTP2_PREFACE)
            await writer.drain()
            assert await closed_by_server(reader, within=10)
        finally:
            writer.close()


async def test_grpc_connections_over_the_cap_are_refused(routes_path, fake_pipeline):
    async with Forwarder(local_settings(routes_path, max_connections=2), pipeline=fake_pipeline) as forwarder:
        held = [await asyncio.open_connection("127.0.0.1", forwarder.grpc_port) for _ in range(2)]
        try:
            for _, writer in held:
                writer.write(HTTP2_PREFACE)
                await writer.drain()
            for reader, _ in held:  # the server has taken a connection once it sends its own SETTINGS frame
                async with asyncio.timeout(10):
                    assert await reader.read(9), "a connection within the cap was closed"
            reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.grpc_port)
            writer.write(HTTP2_PREFACE)
            await writer.drain()
            assert await closed_by_server(reader, within=5)
            writer.close()
            assert not await closed_by_server(held[0][0], within=0.5)  # those within the cap stay open
        finally:
            for _, writer in held:
                writer.close()


async def test_pipelined_requests_on_one_connection_are_answered_in_order(limited, fake_pipeline):
    """HTTP/1.1 pipelining through the receiver's own dispatch: a body that arrived with its head, a wrong
    method, a query string, and a body that arrives later (the waiting read) — four answers, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.http_port)
    try:
        get = b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(head(len(VALID)) + VALID + get + head(len(VALID), path="/v1/traces?via=query") + VALID)
        writer.write(head(len(VALID)) + VALID[:10])
        await writer.drain()
        async with asyncio.timeout(10):
            answers = [await read_answer(reader) for _ in range(3)]
            writer.write(VALID[10:])  # the rest of the fourth body, after its head was already being handled
            answers.append(await read_answer(reader))
    finally:
        writer.close()
    assert [status for status, _, _ in answers] == [200, 405, 200, 200]
    assert answers[1][1]["allow"] == "POST"
    assert "Method Not Allowed" in rpc_status(answers[1][1], answers[1][2]).message
    assert len(fake_pipeline.parts) == 3


async def test_answers_follow_the_request_http_version_and_keep_alive(limited, fake_pipeline):
    """The receiver writes its answers itself (receive/http_answer.py): status line in the request's HTTP
    version, Date, Content-Type and Content-Length, and the connection kept or closed as the request asks."""
    http10 = head(len(VALID)).replace(b"HTTP/1.1", b"HTTP/1.0")
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.http_port)
    try:
        async with asyncio.timeout(10):
            # HTTP/1.0 asking for keep-alive: kept, and said so; the connection serves a second request
            writer.write(http10.replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n") + VALID)
            status_line, headers, body = await read_whole_answer(reader)
            assert status_line == b"HTTP/1.0 200 OK\r\n"
            assert headers["connection"] == "keep-alive"
            assert headers["content-type"] == "application/x-protobuf" and body == b""
            assert headers["date"].endswith(" GMT")
            writer.write(head(len(VALID), "Connection: close") + VALID)  # HTTP/1.1 asking to close
            status, headers, _ = await read_answer(reader)
            assert (status, headers["connection"]) == (200, "close")
        assert await closed_by_server(reader, within=5)
    finally:
        writer.close()
    # HTTP/1.0 without keep-alive: answered, then closed
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.http_port)
    try:
        writer.write(http10 + VALID)
        async with asyncio.timeout(10):
            status_line, headers, _ = await read_whole_answer(reader)
        assert status_line == b"HTTP/1.0 200 OK\r\n"
        assert headers["connection"] == "close"
        assert await closed_by_server(reader, within=5)
    finally:
        writer.close()
    # HTTP/1.1 keeps the connection without saying so; a HEAD answer has no body, so the next answer follows
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.http_port)
    try:
        writer.write(b"HEAD /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n" + head(len(VALID)) + VALID)
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            headers = {}
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            assert (status_line, headers["allow"]) == (b"HTTP/1.1 405 Method Not Allowed\r\n", "POST")
            assert int(headers["content-length"]) > 0  # the size a GET would have, not sent
            status, headers, _ = await read_answer(reader)
        assert status == 200 and "connection" not in headers
    finally:
        writer.close()
    assert len(fake_pipeline.parts) == 4

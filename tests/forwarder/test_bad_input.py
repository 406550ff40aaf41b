"""Bad input over real sockets: every case gets its 4xx (or 503/429) and a google.rpc.Status — never a 500 or a hang."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from google.rpc import status_pb2
from sentryroute_forwarder.app import Forwarder

from tests.forwarder.support import local_settings, metric_value, resource_spans, traces_request

LIMIT = 64 * 1024
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
VALID = traces_request(resource_spans("orders")).SerializeToString()
BAD_HEX = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}).encode()


@pytest.fixture
async def strict(routes_path, fake_pipeline):
    """A forwarder with a 64 KiB request limit and a 0.5 s read timeout."""
    settings = local_settings(routes_path, max_request_bytes=LIMIT, read_timeout=0.5)
    async with Forwarder(settings, pipeline=fake_pipeline) as running:
        yield running


def url(forwarder, path="/v1/traces"):
    return f"http://127.0.0.1:{forwarder.http_port}{path}"


async def status_of(resp) -> status_pb2.Status:
    if resp.content_type == "application/json":
        document = await resp.json()
        return status_pb2.Status(code=document.get("code", 0), message=document.get("message", ""))
    assert resp.content_type == "application/x-protobuf"
    return status_pb2.Status.FromString(await resp.read())


BOMB = gzip.compress(b"\x00" * (LIMIT * 64), compresslevel=9)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "message"),
    [
        ("/v1/traces", PROTOBUF, b"\x0a\x05abc", 400, "not a valid ExportTraceServiceRequest"),
        ("/v1/logs", PROTOBUF, b"\xff\xff\xff", 400, "not a valid ExportLogsServiceRequest"),
        ("/v1/metrics", PROTOBUF, b"\x0a\x05abc", 400, "not a valid ExportMetricsServiceRequest"),
        ("/v1/traces", JSON, b"{not json", 400, "not valid JSON"),
        ("/v1/traces", JSON, b"[1, 2]", 400, "must be a JSON object"),
        ("/v1/traces", JSON, b'{"resourceSpans": 5}', 400, "not a valid ExportTraceServiceRequest"),
        ("/v1/traces", JSON, BAD_HEX, 400, "traceId must be a hex string"),
        ("/v1/traces", JSON, b"[" * 30_000 + b"]" * 30_000, 400, "JSON"),
        ("/v1/traces", {"Content-Type": "text/plain"}, VALID, 415, "unsupported Content-Type"),
        ("/v1/traces", {}, VALID, 415, "unsupported Content-Type"),
        ("/v1/traces", {**PROTOBUF, "Content-Encoding": "br"}, VALID, 415, "unsupported Content-Encoding"),
        ("/v1/traces", {**PROTOBUF, "Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip at all", 400, "compressed body"),
        ("/v1/traces", {**PROTOBUF, "Content-Encoding": "gzip"}, gzip.compress(VALID)[:-8], 400, "truncated"),
        ("/v1/traces", PROTOBUF, b"\x00" * (LIMIT + 1), 413, "larger than 65536 bytes"),
        ("/v1/traces", {**PROTOBUF, "Content-Encoding": "gzip"}, BOMB, 413, "inflated body is larger"),
        ("/v1/spans", PROTOBUF, VALID, 404, "Not Found"),
    ],
    ids=[
        "bad-protobuf", "bad-logs", "bad-metrics", "bad-json", "json-array", "json-wrong-shape", "json-bad-hex",
        "json-deep", "text-plain", "no-content-type", "brotli", "corrupt-gzip", "truncated-gzip", "too-large",
        "gzip-bomb", "unknown-path",
    ],
)  # fmt: skip
async def test_bad_requests_get_a_status(strict, fake_pipeline, http, path, headers, body, status, message):
    async with http.post(url(strict, path), data=body, headers=headers) as resp:
        assert resp.status == status
        assert message in (await status_of(resp)).message
    assert fake_pipeline.parts == []
    assert metric_value(strict, "sentryroute_rejected_requests_total", {"code": str(status)}) == 1


async def test_chunked_body_over_the_limit_is_413(strict, http):
    async def chunks():
        for _ in range(LIMIT // 1024 + 2):
            yield b"\x00" * 1024

    async with http.post(url(strict), data=chunks(), headers=PROTOBUF) as resp:
        assert resp.status == 413


async def test_wrong_method_is_405_with_allow(strict, http):
    async with http.get(url(strict)) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        assert "Method Not Allowed" in (await status_of(resp)).message


async def test_json_errors_are_json(strict, http):
    async with http.post(url(strict), data=b"{", headers=JSON) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json"
        assert (await resp.json())["code"] == 3  # INVALID_ARGUMENT


async def raw_exchange(port: int, chunks: list[bytes]) -> bytes:
    """Send `chunks` on a plain socket and read until the server closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_slow_body_times_out_with_408(strict):
    head = (
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(VALID)}\r\n\r\n"
    )
    answer = await raw_exchange(strict.http_port, [head.encode(), VALID[:5]])
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request body not received within 0.5s" in answer


async def test_slow_headers_are_disconnected(strict):
    answer = await raw_exchange(strict.http_port, [b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"])
    assert answer == b""  # closed without an answer after --read-timeout


async def test_503_with_retry_after_before_the_first_table(tmp_path, fake_pipeline, http):
    settings = local_settings(tmp_path / "missing.json", retry_after=3.0)
    async with (
        Forwarder(settings, pipeline=fake_pipeline) as forwarder,
        http.post(url(forwarder), data=VALID, headers=PROTOBUF) as resp,
    ):
        assert resp.status == 503
        assert 3 <= int(resp.headers["Retry-After"]) <= 5  # --retry-after, plus jitter
        status = await status_of(resp)
        assert status.code == 14  # UNAVAILABLE
        assert "no routes table" in status.message
    assert fake_pipeline.parts == []


async def test_429_with_retry_after_when_the_queue_is_full(strict, fake_pipeline, http):
    fake_pipeline.room = False
    async with http.post(url(strict), data=VALID, headers=PROTOBUF) as resp:
        assert resp.status == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 2  # no estimate: --retry-after, plus jitter
        assert "queue is full" in (await status_of(resp)).message
    fake_pipeline.room = True
    async with http.post(url(strict), data=VALID, headers=PROTOBUF) as resp:
        assert resp.status == 200

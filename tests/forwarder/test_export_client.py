"""The export client and the sender's verdicts, against a real aiohttp server that records what it got (the
client's connection handling: test_export_connections.py)."""

from __future__ import annotations

import gzip
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from sentryroute_forwarder.export.client import ExportClient, TransportError, UpstreamAnswer
from sentryroute_forwarder.export.connection import Headers
from sentryroute_forwarder.export.sender import Sender, Verdict, classify, excerpt
from sentryroute_forwarder.model import Signal

from tests.forwarder.queue_support import Upstream
from tests.forwarder.support import started_export_client

KEY = "0123456789abcdef0123456789abcdef"
EMPTY_GZIP = gzip.compress(b"")  # what the sender posts: a body the client compressed beforehand


@pytest.fixture
async def client() -> AsyncIterator[ExportClient]:
    async with started_export_client(0.5) as client:
        yield client


async def test_post_sends_gzipped_protobuf_with_the_key(upstream: Upstream, client: ExportClient) -> None:
    body = b"\x0a\x02\x0a\x00" * 100_000  # big enough to be compressed off the loop
    answer = await client.post(upstream.url, public_key=KEY, body=body)
    await client.post(upstream.url, public_key=KEY, body=b"\x0a\x00")
    assert answer.status == 202
    headers, raw = upstream.seen[0].headers, upstream.seen[0].body
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["x-sentry-auth"] == f"sentry sentry_key={KEY}"
    assert headers["User-Agent"].startswith("sentryroute/")
    assert gzip.decompress(raw) == body
    assert gzip.decompress(upstream.seen[1].body) == b"\x0a\x00"
    assert upstream.seen[0].peer == upstream.seen[1].peer  # keep-alive: one connection for both


async def test_a_batch_is_posted_as_pieces_without_being_joined(upstream: Upstream, client: ExportClient) -> None:
    """The exporter hands over a batch's records as pieces: upstream gets one gzip member of their concatenation,
    for small batches (compressed on the loop) and big ones (compressed on a worker thread)."""
    small = [b"\x0a\x02\x0a\x00" * 10, b"", b"\x0a\x00"]
    big = [bytes([n]) * 70_000 for n in range(5)]  # past THREAD_COMPRESS_BYTES
    for pieces in (small, big):
        answer = await client.post(upstream.url, public_key=KEY, body=pieces)
        assert answer.status == 202
        assert gzip.decompress(upstream.seen[-1].body) == b"".join(pieces)


async def test_a_body_compressed_beforehand_is_posted_as_it_is(upstream: Upstream, client: ExportClient) -> None:
    """`post_gzipped` sends what `compress` made, byte for byte (the exporter holds a batch in flight as it)."""
    pieces = [b"\x0a\x02\x0a\x00" * 50, b"\x0a\x00"]
    gzipped = await client.compress(pieces)
    answer = await client.post_gzipped(upstream.url, public_key=KEY, gzipped=gzipped)
    assert answer.status == 202
    assert upstream.seen[-1].body == gzipped
    assert upstream.seen[-1].headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(upstream.seen[-1].body) == b"".join(pieces)


async def test_transport_errors_carry_no_secret(client: ExportClient, upstream: Upstream) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(TransportError) as refused:
        await client.post(f"http://127.0.0.1:{closed_port}/api/1/", public_key=KEY, body=b"")
    assert KEY not in str(refused.value)
    upstream.delay = 1.0
    with pytest.raises(TransportError, match="timed out"):
        await client.post(upstream.url, public_key=KEY, body=b"")


@pytest.mark.parametrize(
    ("status", "body", "verdict", "hold_reason"),
    [
        (200, b"", Verdict.DELIVERED, None),
        (202, b"", Verdict.DELIVERED, None),
        (429, b'{"detail":"quota"}', Verdict.RATE_LIMITED, None),
        (500, b"", Verdict.RETRY, None),
        (503, b'{"detail":"failed to queue envelope"}', Verdict.RETRY, None),
        (408, b"", Verdict.RETRY, None),
        (413, b"", Verdict.TOO_LARGE, None),
        (401, b'{"detail":"bad x-sentry-auth header"}', Verdict.HOLD, "unauthorized"),
        (403, b'{"detail":"event submission rejected with_reason: ProjectId"}', Verdict.HOLD, "project_id"),
        (403, b'{"detail":"event submission rejected with_reason: Cors"}', Verdict.HOLD, "forbidden"),
        (400, b'{"detail":"bad project path"}', Verdict.UNDECODABLE, None),
        (415, b"", Verdict.REJECTED, None),
    ],
)
async def test_sender_verdicts(
    upstream: Upstream, client: ExportClient, status: int, body: bytes, verdict: Verdict, hold_reason: str | None
) -> None:
    upstream.status, upstream.body = status, body
    outcome = await Sender(client, default_rate_limit=60).send(
        url=upstream.url, public_key=KEY, gzipped=EMPTY_GZIP, signal=Signal.LOGS
    )
    assert (outcome.verdict, outcome.status, outcome.hold_reason) == (verdict, status, hold_reason)


async def test_rate_limits_are_read_on_success(upstream: Upstream, client: ExportClient) -> None:
    upstream.headers = {"X-Sentry-Rate-Limits": "7:log_item:project"}
    outcome = await Sender(client, default_rate_limit=60).send(
        url=upstream.url, public_key=KEY, gzipped=EMPTY_GZIP, signal=Signal.LOGS
    )
    assert outcome.verdict is Verdict.DELIVERED
    assert [(limit.seconds, set(limit.signals)) for limit in outcome.limits] == [(7, {Signal.LOGS})]


async def test_sender_turns_transport_errors_into_retries(client: ExportClient) -> None:
    outcome = await Sender(client, default_rate_limit=60).send(
        url="http://127.0.0.1:9/x", public_key=KEY, gzipped=EMPTY_GZIP, signal=Signal.TRACES
    )
    assert (outcome.verdict, outcome.status) == (Verdict.RETRY, None)


def test_excerpt_is_short_printable_and_keyless(caplog: pytest.LogCaptureFixture) -> None:
    body = f'{{"detail":"bad\r\nx-sentry-auth: sentry sentry_key={KEY}, k={KEY}"}}'.encode() + b"x" * 500
    text = excerpt(body, secrets=(KEY,))
    assert KEY not in text
    assert "\n" not in text and "\r" not in text
    assert len(text) <= 201
    answer = UpstreamAnswer(403, Headers({}), body)
    with caplog.at_level(logging.DEBUG):
        outcome = classify(answer, sent=Signal.TRACES, default_rate_limit=60, public_key=KEY)
    assert KEY not in outcome.detail


async def test_redirects_are_not_followed_with_the_key(upstream: Upstream, client: ExportClient) -> None:
    # A redirect (to another host, in real life) would carry `x-sentry-auth` along: kept and retried instead.
    upstream.script = [(307, {"Location": f"{upstream.base}/api/2/integration/otlp/v1/traces/"})]
    outcome = await Sender(client, default_rate_limit=60).send(
        url=upstream.url, public_key=KEY, gzipped=EMPTY_GZIP, signal=Signal.TRACES
    )
    assert (outcome.verdict, outcome.status) == (Verdict.RETRY, 307)
    assert len(upstream.seen) == 1

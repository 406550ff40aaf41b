"""The export client's own HTTP/1.1 connections, against raw asyncio servers over real sockets: keep-alive and
its limits, answers of every framing, timeouts, TLS, and what is never done (redirects, retries of answers)."""

from __future__ import annotations

import asyncio
import gzip
import re
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sentryroute_forwarder.export.client import MAX_ANSWER_BODY, ExportClient, TransportError
from sentryroute_forwarder.export.connection import MAX_DRAIN_BYTES
from sentryroute_forwarder.export.pool import Pool
from sentryroute_forwarder.export.settings import ExportSettings

from tests.forwarder.support import started_export_client, wait_until
from tests.forwarder.test_receive_security import issue, pki  # noqa: F401 - the CA fixture

KEY = "0123456789abcdef0123456789abcdef"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Request:
    connection: int  # which connection of the server it came on (0, 1, ...)
    head: bytes
    body: bytes


@dataclass
class RawUpstream:
    """A server that answers each request as `answer(request)` says: bytes to write, or None to close."""

    answer: Callable[[Request], Awaitable[bytes | None]]
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    open: int = 0  # connections open now
    most_open: int = 0
    closed_by_client: int = 0
    closing: bool = False  # close each connection after its first answer

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/api/1/integration/otlp/v1/traces/"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, self.connections = self.connections, self.connections + 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = Request(number, head, await reader.readexactly(length))
                self.requests.append(request)
                data = await self.answer(request)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
                if self.closing:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[Callable[..., Awaitable[RawUpstream]]]:
    servers: list[asyncio.Server] = []

    async def start(
        answer: Callable[[Request], Awaitable[bytes | None]], *, context: ssl.SSLContext | None = None
    ) -> RawUpstream:
        upstream = RawUpstream(answer)
        server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        upstream.port = server.sockets[0].getsockname()[1]
        return upstream

    yield start
    for server in servers:
        server.close()


def always(data: bytes | None) -> Callable[[Request], Awaitable[bytes | None]]:
    async def answer(_: Request) -> bytes | None:
        return data

    return answer


@pytest.fixture
async def client() -> AsyncIterator[ExportClient]:
    async with started_export_client(5) as client:
        yield client


async def test_the_request_is_one_gzipped_post_with_the_key(raw, client):
    upstream = await raw(always(OK))
    answer = await client.post(upstream.url(), public_key=KEY, body=b"\x0a\x00" * 1000)
    assert answer.status == 200 and answer.body == b"ok"
    request = upstream.requests[0]
    lines = request.head.decode().split("\r\n")
    assert lines[0] == "POST /api/1/integration/otlp/v1/traces/ HTTP/1.1"
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:] if line)}
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    assert headers["x-sentry-auth"] == f"sentry sentry_key={KEY}"
    assert headers["content-encoding"] == "gzip" and headers["content-type"] == "application/x-protobuf"
    assert gzip.decompress(request.body) == b"\x0a\x00" * 1000


async def test_keep_alive_connections_are_reused(raw, client):
    upstream = await raw(always(OK))
    for _ in range(5):
        assert (await client.post(upstream.url(), public_key=KEY, body=b"")).status == 200
    assert upstream.connections == 1 and len(upstream.requests) == 5


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0", "http-1.0-keep-alive"],
)
async def test_an_answer_that_ends_the_connection_is_not_reused(raw, client, answer):
    upstream = await raw(always(answer))
    for _ in range(2):
        assert (await client.post(upstream.url(), public_key=KEY, body=b"")).status == 200
    assert upstream.connections == 2


async def test_a_stale_kept_alive_connection_is_retried_once_on_a_new_one(raw, client):
    """The server closed a kept-alive connection as the next request arrived (no byte of an answer): the post
    goes again on a new connection and succeeds; nothing is retried a second time."""

    async def answer(request: Request) -> bytes | None:
        return None if request.connection == 0 and len(upstream.requests) == 2 else OK

    upstream = await raw(answer)
    assert (await client.post(upstream.url(), public_key=KEY, body=b"")).status == 200
    assert (await client.post(upstream.url(), public_key=KEY, body=b"")).status == 200
    assert [r.connection for r in upstream.requests] == [0, 0, 1]

    never = await raw(always(None))  # closes every connection without answering
    with pytest.raises(TransportError, match="connection closed before an answer"):
        await client.post(never.url(), public_key=KEY, body=b"")
    assert len(never.requests) == 1  # a new connection that fails is not retried


async def test_a_connection_closed_mid_head_is_not_retried(raw, client):
    upstream = await raw(always(OK))
    await client.post(upstream.url(), public_key=KEY, body=b"")  # a kept-alive connection to fail on
    upstream.answer, upstream.closing = always(b"HTTP/1.1 200 OK\r\nContent-Len"), True
    with pytest.raises(TransportError, match="during the answer"):
        await client.post(upstream.url(), public_key=KEY, body=b"")
    assert len(upstream.requests) == 2  # sent once: an answer had begun, the data may have been taken


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok",  # then closed: 8 bytes short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n",  # a broken chunk size
    ],
    ids=["closed-mid-body", "broken-body"],
)
async def test_a_success_whose_body_is_cut_short_is_delivered_not_sent_again(raw, client, answer):
    """The status line and headers of a 2xx say the batch was taken; the body is only informational. Taken as a
    transport error, the batch would be sent again (a duplicate at Sentry)."""
    upstream = await raw(always(OK))
    await client.post(upstream.url(), public_key=KEY, body=b"")  # a kept-alive connection, as in production
    upstream.answer, upstream.closing = always(answer), True
    result = await client.post(upstream.url(), public_key=KEY, body=b"")
    assert (result.status, result.body) == (200, b"ok")
    upstream.answer, upstream.closing = always(OK), False
    assert (await client.post(upstream.url(), public_key=KEY, body=b"")).status == 200  # on a new connection
    assert [r.connection for r in upstream.requests] == [0, 0, 1]


async def test_an_answer_that_comes_before_the_request_is_written_ends_its_connection(raw):
    """A server that answers (413) from the head alone and does not read the body: the rest of the body is still
    unsent, and would go before the next request on that connection. It is dropped with the connection."""
    client = ExportClient(ExportSettings(export_timeout=3, connect_timeout=3))
    await client.start()
    served: list[int] = []
    stop = asyncio.Event()

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(served)
        served.append(number)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if number == 0:  # answer from the head, then read nothing more
                    writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
                    await stop.wait()
                    return
                writer.write(OK)  # (the bodies of other connections' requests are empty)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(early, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/1/integration/otlp/v1/traces/"
    try:
        # More than the sockets' buffers hold on loopback, so most of it is still being written at the answer.
        big = await client.post_gzipped(url, public_key=KEY, gzipped=b"\0" * (48 << 20))
        assert big.status == 413
        assert (await client.post_gzipped(url, public_key=KEY, gzipped=b"")).status == 200
        assert served == [0, 1]  # the second request on a new connection, not behind the first one's body
    finally:
        stop.set()
        server.close()
        await client.close()


async def test_chunked_and_gzip_encoded_answers_are_decoded(raw, client):
    detail = b'{"detail":"' + b"quota " * 100 + b'"}'
    packed = gzip.compress(detail)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(packed[i : i + 50]), packed[i : i + 50]) for i in range(0, len(packed), 50)
    )
    upstream = await raw(
        always(
            b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"
            b"X-Sentry-Rate-Limits: 7:log_item:project\r\nx-sentry-rate-limits: 9:span:project\r\n\r\n"
            + chunks
            + b"0\r\n\r\n"
        )
    )
    for _ in range(2):
        answer = await client.post(upstream.url(), public_key=KEY, body=b"")
        assert (answer.status, answer.body) == (429, detail)
        assert answer.headers["x-sentry-rate-limits"] == "7:log_item:project, 9:span:project"
        assert answer.headers.get("X-SENTRY-RATE-LIMITS") == answer.headers["X-Sentry-Rate-Limits"]
    assert upstream.connections == 1  # a chunked answer read to its end leaves the connection reusable


async def test_an_answer_delimited_by_closing_is_read_to_the_end(raw, client):
    upstream = await raw(always(b"HTTP/1.1 503 Service Unavailable\r\n\r\nfailed to queue"))
    upstream.closing = True
    answer = await client.post(upstream.url(), public_key=KEY, body=b"")
    assert (answer.status, answer.body) == (503, b"failed to queue")


async def test_a_big_answer_body_is_kept_short_and_drained_within_a_bound(raw, client):
    small_enough = b"x" * (MAX_DRAIN_BYTES // 2)
    upstream = await raw(
        always(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(small_enough), small_enough))
    )
    for _ in range(2):
        answer = await client.post(upstream.url(), public_key=KEY, body=b"")
        assert (answer.status, answer.body) == (500, b"x" * MAX_ANSWER_BODY)
    assert upstream.connections == 1  # read to its end: reused

    huge = b"y" * (4 * MAX_DRAIN_BYTES)
    upstream = await raw(always(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(huge), huge)))
    for _ in range(2):
        answer = await client.post(upstream.url(), public_key=KEY, body=b"")
        assert (answer.status, answer.body) == (500, b"y" * MAX_ANSWER_BODY)
    assert upstream.connections == 2  # given up past the bound: a new connection for the next post


async def test_a_redirect_is_answered_not_followed(raw, client):
    upstream = await raw(
        always(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n")
    )
    answer = await client.post(upstream.url(), public_key=KEY, body=b"")
    assert (answer.status, answer.headers["location"]) == (307, "http://elsewhere.invalid/")
    assert len(upstream.requests) == 1


async def test_timeouts(raw):
    client = ExportClient(ExportSettings(export_timeout=0.3, connect_timeout=0.2))
    await client.start()
    try:
        stall = asyncio.Event()

        async def never(_: Request) -> bytes | None:
            await stall.wait()
            return None

        silent = await raw(never)
        with pytest.raises(TransportError, match=r"^timed out$"):
            await client.post(silent.url(), public_key=KEY, body=b"")
        # A TLS handshake nobody answers is part of connecting: `connect_timeout`.
        with pytest.raises(TransportError, match=re.escape(f"connecting to 127.0.0.1:{silent.port} timed out")):
            await client.post(silent.url("https"), public_key=KEY, body=b"")

        async def head_then_stall(_: Request) -> bytes | None:
            return b'HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{"det'

        slow_body = await raw(head_then_stall)
        answer = await client.post(slow_body.url(), public_key=KEY, body=b"")
        assert (answer.status, answer.body) == (202, b'{"det')  # the status is the answer: not sent again
        await wait_until(lambda: slow_body.closed_by_client == 1, what="the cut-short connection closed")
        stall.set()
    finally:
        await client.close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/api/1/",
        "http:///api/1/",
        "http://127.0.0.1:99999/api/1/",
        "http://127.0.0.1:0/api/1/",
        "http://user:secret@127.0.0.1/api/1/",
        "http://bad\x00host/api/1/",
        "http://[::1/api/1/",
    ],
)
async def test_an_invalid_url_is_a_transport_error(client, url):
    with pytest.raises(TransportError, match=r"^invalid ingest URL$"):
        await client.post(url, public_key=KEY, body=b"")


async def test_refused_and_unresolvable_hosts_carry_no_key(client):
    with pytest.raises(TransportError, match=re.escape("cannot connect to 127.0.0.1:9")) as refused:
        await client.post("http://127.0.0.1:9/api/1/", public_key=KEY, body=b"")
    assert KEY not in str(refused.value)
    with pytest.raises(TransportError, match=re.escape("cannot connect to nowhere.invalid:80")):
        await client.post("http://nowhere.invalid/api/1/", public_key=KEY, body=b"")


async def test_at_most_64_connections_per_host(raw):
    client = ExportClient(ExportSettings(export_timeout=30, connect_timeout=30))
    await client.start()
    release = asyncio.Event()

    async def held(_: Request) -> bytes | None:
        await release.wait()
        return OK

    upstream = await raw(held)
    try:
        posts = [asyncio.create_task(client.post(upstream.url(), public_key=KEY, body=b"")) for _ in range(70)]
        await wait_until(lambda: len(upstream.requests) == 64, what="64 requests in flight")
        assert upstream.connections == 64  # the other 6 wait for one of them
        release.set()
        assert [answer.status for answer in await asyncio.gather(*posts)] == [200] * 70
        assert upstream.connections == 64 and upstream.most_open == 64
    finally:
        await client.close()


async def test_the_pool_serves_waiters_in_order_and_makes_room_under_the_total_limit(raw):
    upstream_a, upstream_b = await raw(always(OK)), await raw(always(OK))
    a, b = ("http", "127.0.0.1", upstream_a.port), ("http", "127.0.0.1", upstream_b.port)

    async def no_tls() -> ssl.SSLContext:
        raise AssertionError("no TLS here")

    pool = Pool(no_tls, limit=2, limit_per_host=1)
    first, _ = await pool.acquire(a)
    served: list[int] = []

    async def wait_for_a(n: int) -> None:
        connection, reused = await pool.acquire(a)
        served.append(n)
        assert reused  # handed over as it was released
        connection.reusable = True
        pool.release(connection)

    waiters = [asyncio.create_task(wait_for_a(n)) for n in range(3)]
    await asyncio.sleep(0)
    first.reusable = True
    pool.release(first)
    await asyncio.gather(*waiters)
    assert served == [0, 1, 2]
    # b gets the second slot; a third origin would wait, unless an idle connection is closed for it
    other, _ = await pool.acquire(b)
    assert upstream_a.connections == 1
    pool.release(other)  # not reusable (no request was answered): closed
    await pool.close()


async def test_idle_connections_are_closed_after_the_keep_alive_timeout(raw):
    upstream = await raw(always(OK))

    async def no_tls() -> ssl.SSLContext:
        raise AssertionError("no TLS here")

    pool = Pool(no_tls, keepalive=0.2)
    connection, _ = await pool.acquire(("http", "127.0.0.1", upstream.port))
    answer = await connection.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"")
    assert answer.status == 200 and connection.reusable
    pool.release(connection)
    await wait_until(lambda: upstream.closed_by_client == 1, within=10, what="the idle connection closed")
    assert connection.closed
    await pool.close()


async def test_https_verifies_the_server_against_the_trust_store(raw, pki, monkeypatch):  # noqa: F811
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki / "server-a.crt", pki / "server-a.key")  # names localhost and 127.0.0.1
    names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    upstream = await raw(always(OK), context=server_context)

    untrusting = ExportClient(ExportSettings(export_timeout=5, connect_timeout=5))  # the system's CAs only
    await untrusting.start()
    with pytest.raises(TransportError, match=r"certificate verify failed|unable to get local issuer"):
        await untrusting.post(upstream.url("https", "localhost"), public_key=KEY, body=b"")
    await untrusting.close()

    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.crt"))  # how an operator adds a private CA
    trusting = ExportClient(ExportSettings(export_timeout=5, connect_timeout=5))
    await trusting.start()
    try:
        answer = await trusting.post(upstream.url("https", "localhost"), public_key=KEY, body=b"x")
        assert answer.status == 200
        assert names[-1] == "localhost"  # SNI
        assert gzip.decompress(upstream.requests[-1].body) == b"x"

        issue("elsewhere", ca="ca", cwd=pki, san="DNS:elsewhere.invalid")
        wrong_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        wrong_context.load_cert_chain(pki / "elsewhere.crt", pki / "elsewhere.key")
        wrong = await raw(always(OK), context=wrong_context)
        with pytest.raises(TransportError, match="mismatch"):
            await trusting.post(wrong.url("https", "localhost"), public_key=KEY, body=b"")
        assert not wrong.requests
    finally:
        await trusting.close()


def test_the_forwarder_process_imports_no_aiohttp(tmp_path: Path):
    """aiohttp (with yarl and multidict) is ~7 MB of resident memory: a forwarder that starts, receives and
    exports must never import it (a fresh interpreter, a routes file, one request exported)."""
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from pathlib import Path
        from sentryroute_forwarder.app import Forwarder
        from sentryroute_forwarder.config import Address, ForwarderSettings
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        async def main():
            got = asyncio.Event()

            async def upstream(reader, writer):
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
                got.set()

            server = await asyncio.start_server(upstream, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            base = f"http://127.0.0.1:{port}/api/1/integration/otlp/v1"
            routes = Path(sys.argv[1])
            routes.write_text(json.dumps({
                "version": 1,
                "routes": [{"attribute": "service.name", "value": "orders", "project": "org/p"}],
                "projects": {"org/p": {"id": "1", "tracesUrl": f"{base}/traces/", "logsUrl": f"{base}/logs/",
                                       "publicKey": "0123456789abcdef0123456789abcdef"}},
            }))
            local = Address("127.0.0.1", 0)
            settings = ForwarderSettings(
                routes=routes, otlp_http=local, otlp_grpc=local, admin=local, batch_timeout=0.01
            )
            request = ExportTraceServiceRequest()
            resource = request.resource_spans.add()
            attribute = resource.resource.attributes.add(key="service.name")
            attribute.value.string_value = "orders"
            span = resource.scope_spans.add().spans.add(name="s", trace_id=b"1" * 16, span_id=b"2" * 8)
            body = request.SerializeToString()
            async with Forwarder(settings) as forwarder:
                reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.http_port)
                writer.write(b"POST /v1/traces HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/x-protobuf\\r\\n"
                             b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
                assert b" 200 " in await reader.readline()
                await asyncio.wait_for(got.wait(), 30)
            loaded = sorted({name.split(".")[0] for name in sys.modules} & {"aiohttp", "yarl", "multidict"})
            print("loaded:", loaded)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "routes.json")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "loaded: []"


async def test_an_endless_answer_head_is_refused_within_a_bound(client):
    """A hostile or broken upstream that streams one header value forever: httptools keeps a header in its
    own buffer until the header ends, so the bound on the head must hold before the parser sees it — not grow
    until `export_timeout` (about 40 MB a second over loopback)."""
    gave_up = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        try:
            while True:
                writer.write(b"a" * 65536)
                await writer.drain()
        except ConnectionError:
            gave_up.set()
        finally:
            writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransportError, match=r"answer head over 65536 bytes"):
            await client.post(f"http://127.0.0.1:{port}/api/1/", public_key=KEY, body=b"")
        await wait_until(gave_up.is_set, what="the client to drop the connection")
    finally:
        server.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nframes",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
async def test_an_upgrade_answer_is_a_transport_error_not_a_crash_of_the_protocol(raw, client, answer, caplog):
    """The parser stops at a 101 (httptools raises HttpParserUpgrade, not an HttpParserError): that must end
    this request like any malformed answer, not escape data_received as asyncio's 'Fatal error'."""
    upstream = await raw(always(answer))
    with pytest.raises(TransportError, match=r"upgrade"):
        await client.post(upstream.url(), public_key=KEY, body=b"")
    await wait_until(lambda: upstream.open == 0, what="the connection closed")
    assert not [record for record in caplog.records if "Fatal error" in record.getMessage()]
    # The next post is unaffected.
    upstream.answer = always(OK)
    assert (await client.post(upstream.url(), public_key=KEY, body=b"")).status == 200

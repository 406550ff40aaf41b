"""The HTTP client that posts OTLP batches to Sentry's ingest endpoints.

Keep-alive HTTP/1.1 connections shared by every project (all projects of a sentry.io org share the ingest
host), from a small pool of our own (`pool.py`; `connection.py` parses answers with httptools) rather than
aiohttp's client: see pool.py for why. Bodies are gzipped with ISA-L (`isal.isal_zlib`, ~6x faster than zlib,
docs/performance-facts.md); big bodies are compressed in a worker thread — ISA-L releases the GIL — so a 1 MiB
batch (~0.4 ms) does not stall receiving.

What a post does, and guarantees:
- the URL is parsed and checked once (cached): http or https, a host, a port in range; anything else is
  `TransportError("invalid ingest URL")`;
- https verifies the server against the system's trust store (OpenSSL's default paths, so `SSL_CERT_FILE` /
  `SSL_CERT_DIR` apply — what aiohttp used), with SNI and a hostname check;
- `connect_timeout` bounds getting a connection (waiting for room under the limits included, as aiohttp),
  `export_timeout` the whole request; no answer in time is `TransportError("timed out")`;
- a request that fails on a kept-alive connection before any byte of its answer (the server had closed it
  while idle) is sent once more on a new connection, so a stale connection costs no back-off;
- redirects are not followed (the key in `x-sentry-auth` would go along); the answer is returned as it is;
- the answer's first MAX_ANSWER_BODY bytes are kept (gzip/deflate decoded), its headers by case-insensitive name;
  once an answer's head is in, its status is the answer even if the body is then cut short (closed, broken or
  slow): a 2xx means the batch was taken, and sending it again would duplicate it.
TransportError messages name the host and the failure, never a header or a key.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import quote, urlsplit

from isal import isal_zlib

from sentryroute_forwarder.export.connection import MAX_ANSWER_BODY, Connection, ConnectionLost, MalformedAnswer
from sentryroute_forwarder.export.pool import Origin, Pool
from sentryroute_forwarder.export.settings import ExportSettings

__all__ = ["GZIP_WBITS", "MAX_ANSWER_BODY", "Body", "ExportClient", "TransportError", "UpstreamAnswer", "user_agent"]

#: Bodies at least this big are compressed off the event loop. Measured (2 vCPU, level 1): inline 40 µs for
#: 64 KiB, 105 µs for 256 KiB, 260 µs for 720 KiB; a thread hop adds ~110-150 µs of latency but frees the loop.
THREAD_COMPRESS_BYTES = 256 * 1024

#: An upstream request body: bytes, or pieces (a batch's records) that concatenate to it.
Body = bytes | Sequence[bytes]
#: What `ExportClient.compress` writes: one gzip member (deflate in a gzip wrapper, 32 KiB window).
GZIP_WBITS = 16 + 15
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?")
#: What stays as it is in a request target; anything else is percent-encoded (as yarl did).
_TARGET_SAFE = "/:@!$&'()*+,;=-._~%?"


def user_agent() -> str:
    try:
        return f"sentryroute/{version('sentryroute')}"
    except PackageNotFoundError:
        return "sentryroute/dev"


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes  # at most MAX_ANSWER_BODY bytes


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, TLS failure, or a timeout. The message carries no secrets."""


@dataclass(frozen=True, slots=True)
class _Target:
    origin: Origin
    head: bytes  # the request line and the headers every post to it has, up to the key


class ExportClient:
    """Posts gzipped protobuf bodies with the project's public key; its connections are opened by `start()`."""

    def __init__(self, settings: ExportSettings) -> None:
        self._settings = settings
        self._pool: Pool | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._user_agent = user_agent()

    async def start(self) -> None:
        if self._pool is None:
            self._pool = Pool(self._tls)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def compress(self, body: Body) -> bytes:
        """gzip of `body` (or of its pieces, concatenated: they are compressed one after another, so a batch of
        queued records is never copied into one big buffer first)."""
        level = self._settings.gzip_level
        pieces = (body,) if isinstance(body, bytes) else body
        if sum(len(piece) for piece in pieces) >= THREAD_COMPRESS_BYTES:
            return await asyncio.to_thread(_gzip_pieces, pieces, level)
        return _gzip_pieces(pieces, level)

    async def post(self, url: str, *, public_key: str, body: Body) -> UpstreamAnswer:
        """POST one OTLP protobuf body (bytes, or pieces that concatenate to it); raises TransportError when no
        HTTP answer arrives."""
        if self._pool is None:
            raise RuntimeError("ExportClient.start() was not awaited")
        return await self.post_gzipped(url, public_key=public_key, gzipped=await self.compress(body))

    async def post_gzipped(self, url: str, *, public_key: str, gzipped: bytes) -> UpstreamAnswer:
        """POST a body `compress` already made (the exporter keeps a batch in flight as that body, not as its
        pieces); raises TransportError when no HTTP answer arrives."""
        if self._pool is None:
            raise RuntimeError("ExportClient.start() was not awaited")
        try:
            target = _target(url, self._user_agent)
        except ValueError:
            raise TransportError("invalid ingest URL") from None
        if not (public_key.isascii() and public_key.isalnum()):  # the routes table checks it; a header must not break
            raise TransportError("invalid public key")
        head = b"%s%s\r\nContent-Length: %d\r\n\r\n" % (target.head, public_key.encode(), len(gzipped))
        used: list[Connection] = []
        try:
            async with asyncio.timeout(self._settings.export_timeout):
                return await self._exchange(target.origin, head, gzipped, used)
        except TimeoutError:
            if used and used[-1].has_head:  # the status is known, only the body was slow: that is the answer
                answer = used[-1].partial_answer()
                return UpstreamAnswer(answer.status, answer.headers, answer.body)
            raise TransportError("timed out") from None

    async def _exchange(self, origin: Origin, head: bytes, body: bytes, used: list[Connection]) -> UpstreamAnswer:
        pool = self._pool
        assert pool is not None
        fresh = False
        while True:
            connection, reused = await self._connection(pool, origin, fresh=fresh)
            used.append(connection)
            try:
                answer = await connection.send(head, body)
            except ConnectionLost as exc:
                pool.discard(connection)
                if reused and not exc.answer_started:
                    fresh = True  # a kept-alive connection the server had closed: once more, on a new one
                    continue
                raise TransportError(str(exc)) from None
            except MalformedAnswer as exc:
                pool.discard(connection)
                raise TransportError(str(exc)) from None
            except BaseException:  # timed out or cancelled mid-request: the connection is in an unknown state
                pool.discard(connection)
                raise
            pool.release(connection)
            return UpstreamAnswer(answer.status, answer.headers, answer.body)

    async def _connection(self, pool: Pool, origin: Origin, *, fresh: bool) -> tuple[Connection, bool]:
        """A connection to `origin` within `connect_timeout` (an idle one at once when there is one)."""
        if not fresh:
            idle = pool.take(origin)
            if idle is not None:
                return idle, True
        _, host, port = origin
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                return await pool.acquire(origin, fresh=fresh)
        except TimeoutError:
            raise TransportError(f"connecting to {host}:{port} timed out") from None
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(f"TLS with {host}:{port} failed: {exc.verify_message or exc.reason}") from None
        except ssl.SSLError as exc:
            raise TransportError(f"TLS with {host}:{port} failed: {exc.reason or type(exc).__name__}") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None

    async def _tls(self) -> ssl.SSLContext:
        """The client TLS context, made on first use (loading the trust store is blocking I/O: off the loop)."""
        if self._tls_context is None:
            context = await asyncio.to_thread(_verifying_context)
            self._tls_context = self._tls_context or context
        return self._tls_context


def _verifying_context() -> ssl.SSLContext:
    """What aiohttp's client used: the default verifying context (system trust store, hostname check) for
    HTTP/1.1."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


@functools.lru_cache(maxsize=4096)  # bounded: ingest URLs come and go with the table
def _target(url: str, agent: str) -> _Target:
    """Parse and check an ingest URL once (raises ValueError): its origin and the head of a post to it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or parts.username is not None or parts.password is not None:
        raise ValueError("not an http(s) URL without credentials")
    host = parts.hostname or ""  # lower case, without IPv6 brackets
    port = parts.port  # (raises ValueError when not a number in range)
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    elif port == 0:
        raise ValueError("port 0")
    if ":" in host:
        ipaddress.IPv6Address(host.partition("%")[0])
        authority = f"[{host}]"
    else:
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        if not _HOST_NAME.fullmatch(host):
            raise ValueError("not a host name")
        authority = host
    if port != _DEFAULT_PORTS[scheme]:
        authority = f"{authority}:{port}"
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    query = quote(parts.query, safe=_TARGET_SAFE)
    request_target = f"{path}?{query}" if query else path
    head = (
        f"POST {request_target} HTTP/1.1\r\n"
        f"Host: {authority}\r\n"
        "Content-Type: application/x-protobuf\r\n"
        "Content-Encoding: gzip\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
        f"User-Agent: {agent}\r\n"
        "x-sentry-auth: sentry sentry_key="
    )
    return _Target((scheme, host, port), head.encode("ascii"))


def _gzip_pieces(pieces: Sequence[bytes], level: int) -> bytes:
    """One gzip member of the pieces' concatenation, without joining them into one buffer first."""
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, GZIP_WBITS)
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush())
    return b"".join(out)

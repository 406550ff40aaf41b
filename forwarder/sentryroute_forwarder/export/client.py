"""The HTTP client that posts OTLP batches to Sentry's ingest endpoints.

One `aiohttp.ClientSession` for every project: keep-alive connections are reused per host (all projects of
a sentry.io org share the ingest host). Bodies are gzipped with ISA-L (`isal.igzip`, ~6x faster than zlib,
docs/performance-facts.md); big bodies are compressed in a worker thread — ISA-L releases the GIL — so a 1 MiB batch
(~0.4 ms) does not stall receiving.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import aiohttp
from isal import igzip, isal_zlib
from yarl import URL

from sentryroute_forwarder.export.settings import ExportSettings

__all__ = ["Body", "ExportClient", "SessionFactory", "TransportError", "UpstreamAnswer", "user_agent"]

#: Bodies at least this big are compressed off the event loop. Measured (2 vCPU, level 1): inline 40 µs for
#: 64 KiB, 105 µs for 256 KiB, 260 µs for 720 KiB; a thread hop adds ~110-150 µs of latency but frees the loop.
THREAD_COMPRESS_BYTES = 256 * 1024
#: How much of an error body is kept (for a log excerpt); Sentry's are a short JSON `detail`.
MAX_ANSWER_BODY = 4096

SessionFactory = Callable[[], aiohttp.ClientSession]
#: An upstream request body: bytes, or pieces (a batch's records) that concatenate to it.
Body = bytes | Sequence[bytes]
_GZIP_WBITS = 16 + 15  # deflate in a gzip wrapper, 32 KiB window (what igzip.compress writes)


def user_agent() -> str:
    try:
        return f"sentryroute/{version('sentryroute')}"
    except PackageNotFoundError:
        return "sentryroute/dev"


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    status: int
    headers: Mapping[str, str]  # case-insensitive (multidict)
    body: bytes  # at most MAX_ANSWER_BODY bytes


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, TLS failure, or a timeout. The message carries no secrets."""


class ExportClient:
    """Posts gzipped protobuf bodies with the project's public key; one session, opened by `start()`."""

    def __init__(self, settings: ExportSettings, *, session_factory: SessionFactory | None = None) -> None:
        self._settings = settings
        self._session_factory = session_factory or self._default_session
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent()

    def _default_session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self._settings.export_timeout, connect=self._settings.connect_timeout)
        # Many projects share one ingest host: the per-host limit bounds parallel requests to one Sentry.
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=64, enable_cleanup_closed=True)
        # No cookie jar: Sentry sets none, and one project's answer must not add cookies to another's requests
        # (it also spares a jar lookup per request).
        return aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def start(self) -> None:
        if self._session is None:
            self._session = self._session_factory()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def compress(self, body: Body) -> bytes:
        """gzip of `body` (or of its pieces, concatenated: they are compressed one after another, so a batch of
        queued records is never copied into one big buffer first)."""
        level = self._settings.gzip_level
        if isinstance(body, bytes):
            if len(body) >= THREAD_COMPRESS_BYTES:
                return await asyncio.to_thread(igzip.compress, body, level)
            return igzip.compress(body, level)
        if sum(len(piece) for piece in body) >= THREAD_COMPRESS_BYTES:
            return await asyncio.to_thread(_gzip_pieces, body, level)
        return _gzip_pieces(body, level)

    async def post(self, url: str, *, public_key: str, body: Body) -> UpstreamAnswer:
        """POST one OTLP protobuf body (bytes, or pieces that concatenate to it); raises TransportError when no
        HTTP answer arrives."""
        return await self.post_gzipped(url, public_key=public_key, gzipped=await self.compress(body))

    async def post_gzipped(self, url: str, *, public_key: str, gzipped: bytes) -> UpstreamAnswer:
        """POST a body `compress` already made (the exporter keeps a batch in flight as that body, not as its
        pieces); raises TransportError when no HTTP answer arrives."""
        if self._session is None:
            raise RuntimeError("ExportClient.start() was not awaited")
        headers = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "x-sentry-auth": f"sentry sentry_key={public_key}",
            "User-Agent": self._user_agent,
        }
        try:
            target = _parsed_url(url)
        except ValueError:
            raise TransportError("invalid ingest URL") from None
        try:
            # Redirects are not followed: they would carry the key in `x-sentry-auth` to another host.
            async with self._session.post(target, data=gzipped, headers=headers, allow_redirects=False) as response:
                return UpstreamAnswer(response.status, response.headers, await _read_start(response))
        except TimeoutError:
            raise TransportError("timed out") from None
        except aiohttp.ClientError as exc:
            # aiohttp's messages name the host and the OS error, never request headers.
            raise TransportError(f"{type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=4096)  # bounded: ingest URLs come and go with the table
def _parsed_url(url: str) -> URL:
    """The URL parsed once per project and signal: aiohttp parses a `str` URL on every request (~8 µs)."""
    return URL(url)


def _gzip_pieces(pieces: Sequence[bytes], level: int) -> bytes:
    """One gzip member of the pieces' concatenation: `igzip.compress(b"".join(pieces))` without the join."""
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush())
    return b"".join(out)


async def _read_start(response: aiohttp.ClientResponse) -> bytes:
    """Up to MAX_ANSWER_BODY bytes of the answer (a single `read(n)` may return just the first chunk)."""
    body = bytearray()
    while len(body) < MAX_ANSWER_BODY and (chunk := await response.content.read(MAX_ANSWER_BODY - len(body))):
        body += chunk
    return bytes(body)

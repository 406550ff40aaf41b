"""The OTLP/HTTP receiver (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`).

Handlers are thin: check the request, read and inflate the body with bounds, turn OTLP/JSON into wire
bytes, and hand the rest to the `Intake`. Every error is a `google.rpc.Status` in the request's content
type with a 4xx (or 503) status — bad input never causes a 500 or a hang.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from sentryroute.otlp_json import InvalidJson, parse_otlp_json, to_otlp_json
from sentryroute_forwarder.config import ForwarderSettings
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.peers.address import http_peer_host
from sentryroute_forwarder.receive.auth import BearerAuth
from sentryroute_forwarder.receive.http_answer import Answer
from sentryroute_forwarder.receive.inflate import CorruptBody, InflatedTooLarge, UnsupportedEncoding, inflate
from sentryroute_forwarder.receive.intake import Intake, Outcome, Overloaded, Reservation, RetryLater
from sentryroute_forwarder.receive.offload import Offload
from sentryroute_forwarder.receive.services import SERVICES, OtlpService
from sentryroute_forwarder.receive.status import CODE_FOR_HTTP, build_status, retry_hint
from sentryroute_forwarder.route.origin import ATTRIBUTE, Origin
from sentryroute_forwarder.route.wire import MalformedPayload

__all__ = ["build_http_server", "http_runner", "receiver_grace"]

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})

M = TypeVar("M", bound=Message)
T = TypeVar("T")


class _Reject(Exception):
    """Ends a request with an error status; the message goes to the client in a google.rpc.Status."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    @classmethod
    def too_large(cls, limit: int) -> _Reject:
        """413 for a body over `--max-request-bytes` (declared, read at once or arriving in chunks)."""
        return cls(413, f"request body is larger than {limit} bytes")


@dataclass(frozen=True, slots=True)
class _Limits:
    max_request_bytes: int
    read_timeout: float
    retry_after: float
    max_concurrent_requests: int
    max_json_bytes: int


#: Bodies smaller than this are inflated and parsed on the event loop: a thread hop would cost more.
_ON_LOOP_BYTES = 8 * 1024


class _OtlpHandler:
    def __init__(
        self,
        *,
        service: OtlpService,
        intake: Intake,
        auth: BearerAuth | None,
        limits: _Limits,
        offload: Offload,
        in_progress: list[int],
    ) -> None:
        self._service = service
        self._intake = intake
        self._auth = auth
        self._limits = limits
        self._offload = offload
        self._in_progress = in_progress  # one counter shared by the handlers of all paths

    async def handle(self, request: BaseRequest) -> Answer:
        if self._auth is not None and not self._auth.allows(request.headers.get("Authorization")):
            raise _Reject(401, "missing or wrong bearer token", headers={"WWW-Authenticate": 'Bearer realm="otlp"'})
        media_type = request.content_type
        if media_type not in _PROTOBUF_TYPES and media_type != JSON:
            raise _Reject(415, f"unsupported Content-Type: use {PROTOBUF} or {JSON}")
        if self._in_progress[0] >= self._limits.max_concurrent_requests:
            raise self._retry_later(Overloaded("too many requests in progress"))
        self._in_progress[0] += 1
        try:
            outcome = await self._process(request, is_json=media_type == JSON)
            if outcome.commit is not None:
                await outcome.commit
        except MalformedPayload as exc:
            raise _Reject(400, f"body is not a valid {self._service.request_type.DESCRIPTOR.name}: {exc}") from None
        except RetryLater as exc:
            raise self._retry_later(exc) from None
        finally:
            self._in_progress[0] -= 1
        return _respond(request, 200, self._service.response(outcome))

    async def _process(self, request: BaseRequest, *, is_json: bool) -> Outcome:
        """Reserve, read, inflate, decode and route one body; raises RetryLater or MalformedPayload."""
        limit = self._limits.max_request_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            raise _Reject.too_large(limit)
        # Reserved before a byte of the body is read: a body that cannot fit is refused at once.
        with self._intake.reserve(declared or 0) as reservation:
            raw = await self._read_body(request, reservation)
            body = await self._inflate(raw, request.headers.get("Content-Encoding", ""))
            reservation.grow(len(raw) + len(body))
            del raw
            if is_json and len(body) > self._limits.max_json_bytes:
                raise _Reject(413, f"OTLP/JSON body is larger than {self._limits.max_json_bytes} bytes: use protobuf")
            signal = self._service.signal
            if signal is None:
                metrics = await self._maybe_offload(len(body), _decode, ExportMetricsServiceRequest, body, is_json)
                return self._intake.reject_metrics(metrics)
            if is_json:  # OTLP/JSON becomes wire bytes first: routing only ever reads the wire format
                message = await self._maybe_offload(len(body), _decode, self._service.request_type, body, True)
                body = message.SerializeToString()
                reservation.grow(len(body))
            # --namespace-from peer: who sent it (SPEC §6.1); else the resource attribute says it
            origin = await self._origin(request) if self._intake.peer_mode else ATTRIBUTE
            return self._intake.accept(signal, body, reservation=reservation, origin=origin)

    async def _origin(self, request: BaseRequest) -> Origin:
        """Who sent the request: its peer address, resolved in `--namespace-from peer` mode (SPEC §6.1)."""
        transport = request.transport
        return await self._intake.origin_of(
            http_peer_host(transport.get_extra_info("peername")) if transport is not None else None
        )

    async def _read_body(self, request: BaseRequest, reservation: Reservation) -> bytes:
        """The body, joined once; the reservation grows with what arrives (chunked bodies declare no size)."""
        limit = self._limits.max_request_bytes
        content = request.content
        try:
            if content.is_eof():  # all of it has arrived already (most requests): no timer, no wait
                return self._received(content.read_nowait(-1), reservation)
            chunks, total = [], 0
            async with asyncio.timeout(self._limits.read_timeout):
                async for chunk in content.iter_any():
                    total += len(chunk)
                    if total > limit:
                        raise _Reject.too_large(limit)
                    reservation.grow(total)
                    chunks.append(chunk)
            return b"".join(chunks)
        except TimeoutError:
            raise _Reject(408, f"request body not received within {self._limits.read_timeout:g}s") from None
        except HttpProcessingError as exc:  # broken chunked encoding and the like
            raise _Reject(400, f"malformed HTTP body: {exc.message[:200]}") from None
        except ConnectionResetError:  # the client went away; nobody will read the answer
            raise _Reject(400, "connection lost while reading the body") from None

    def _received(self, body: bytes, reservation: Reservation) -> bytes:
        if len(body) > self._limits.max_request_bytes:
            raise _Reject.too_large(self._limits.max_request_bytes)
        reservation.grow(len(body))
        return body

    async def _inflate(self, raw: bytes, encoding: str) -> bytes:
        if not encoding or encoding.strip().lower() == "identity":
            return raw  # nothing to inflate: no trip to a decode worker (measured: 6 % of an SDK-sized request)
        try:
            inflater = functools.partial(inflate, encoding=encoding, limit=self._limits.max_request_bytes)
            return await self._maybe_offload(len(raw), inflater, raw)
        except UnsupportedEncoding as exc:
            raise _Reject(415, str(exc)) from None
        except InflatedTooLarge as exc:
            raise _Reject(413, str(exc)) from None
        except CorruptBody as exc:
            raise _Reject(400, str(exc)) from None

    async def _maybe_offload(self, size: int, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on the event loop for small inputs, else on a decode worker."""
        if size < _ON_LOOP_BYTES:
            return function(*args)
        return await self._offload.run(function, *args)

    def _retry_later(self, refusal: RetryLater) -> _Reject:
        seconds = max(1, round(retry_hint(refusal.retry_after, self._limits.retry_after)))
        message = f"{refusal.message}; retry in {seconds}s"
        return _Reject(refusal.status, message, headers={"Retry-After": str(seconds)})


def _decode(message_type: type[M], body: bytes, is_json: bool) -> M:
    """Parse a body (runs on a decode worker for large ones); raises _Reject(400)."""
    if is_json:
        try:
            return parse_otlp_json(body, message_type)
        except InvalidJson as exc:
            raise _Reject(400, str(exc)) from None
    try:
        return message_type.FromString(body)
    except DecodeError:
        raise _Reject(400, f"body is not a valid {message_type.DESCRIPTOR.name}") from None


def _respond(
    request: BaseRequest, status: int, message: Message, *, headers: dict[str, str] | None = None, close: bool = False
) -> Answer:
    """`message` encoded like the request (JSON for JSON requests, else protobuf), never compressed."""
    if request.content_type == JSON:
        return Answer(status, JSON, to_otlp_json(message), headers, close=close)
    return Answer(status, PROTOBUF, message.SerializeToString(), headers, close=close)


def _error_response(request: BaseRequest, status: int, message: str, headers: dict[str, str]) -> Answer:
    retry_after = float(headers["Retry-After"]) if "Retry-After" in headers else None
    body = build_status(CODE_FOR_HTTP.get(status, CODE_FOR_HTTP[400]), message, retry_after=retry_after)
    # 408, 413: the rest of the body was not read, so the connection cannot carry another request
    return _respond(request, status, body, headers=headers, close=status in (408, 413))


class _Dispatch:
    """The server's one request handler: the path picks the OTLP service, and every refusal becomes a
    google.rpc.Status. aiohttp's low-level server, without an Application, router or middlewares: they cost
    about a tenth of an SDK-sized request (measured with py-spy)."""

    def __init__(self, handlers: dict[str, _OtlpHandler], metrics: ForwarderMetrics) -> None:
        self._handlers = handlers
        self._metrics = metrics

    async def __call__(self, request: BaseRequest) -> Answer:
        try:
            handler = self._handlers.get(request.path)
            if handler is None:
                raise _Reject(404, "Not Found")
            if request.method != "POST":
                raise _Reject(405, "Method Not Allowed", headers={"Allow": "POST"})
            return await handler.handle(request)
        except _Reject as reject:
            self._metrics.rejected_requests.labels(str(reject.status)).inc()
            return _error_response(request, reject.status, reject.message, reject.headers)


def build_http_server(
    *,
    intake: Intake,
    settings: ForwarderSettings,
    metrics: ForwarderMetrics,
    auth: BearerAuth | None,
    offload: Offload,
) -> web.Server:
    """The OTLP/HTTP server: closes connections idle (or stuck in headers) too long, caps open connections,
    inflates nothing by itself and answers every error with a google.rpc.Status."""
    limits = _Limits(
        settings.max_request_bytes,
        settings.read_timeout,
        settings.retry_after,
        settings.max_concurrent_requests,
        settings.max_json_bytes,
    )
    in_progress = [0]  # one counter shared by the handlers of all paths
    handlers = {
        service.http_path: _OtlpHandler(
            service=service, intake=intake, auth=auth, limits=limits, offload=offload, in_progress=in_progress
        )
        for service in SERVICES
    }
    # The body is read by the handlers (bounded and with a timeout); aiohttp's own limit is only a backstop.
    request_factory = functools.partial(_make_request, client_max_size=settings.max_request_bytes)
    # aiohttp's connection loop only prepares an answer, writes its end and reads its keep_alive: an Answer
    dispatch = cast("Callable[[BaseRequest], Awaitable[web.StreamResponse]]", _Dispatch(handlers, metrics))
    server = _OtlpServer(
        dispatch,
        request_factory=request_factory,
        access_log=None,
        auto_decompress=False,
        keepalive_timeout=settings.read_timeout,
        # After an early answer (413, 408), unread body is drained this long so the client sees the answer.
        lingering_time=min(2.0, settings.read_timeout),
    )
    server.metrics = metrics
    server.max_connections = settings.max_connections
    server.busy_answer = _busy_answer(settings.retry_after)
    return server


def _make_request(
    message: RawRequestMessage,
    payload: StreamReader,
    protocol: RequestHandler,
    writer: AbstractStreamWriter,
    task: asyncio.Task[None],
    *,
    client_max_size: int,
) -> BaseRequest:
    return BaseRequest(message, payload, protocol, writer, task, protocol._loop, client_max_size=client_max_size)


def receiver_grace(settings: ForwarderSettings) -> float:
    """How long requests in flight may take to finish at shutdown: a share of `--shutdown-timeout`, the rest
    is for flushing the queues."""
    return min(5.0, settings.shutdown_timeout / 4)


class _OtlpRequestHandler(RequestHandler):
    """aiohttp's connection protocol, answering the errors aiohttp detects itself (malformed request lines or
    headers, duplicate Content-Length, Content-Length with Transfer-Encoding, oversized lines) and unexpected
    failures with a google.rpc.Status like every other error, instead of text/plain."""

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer already started: nothing else can be said
            return super().handle_error(request, status, exc, message)
        if status >= 500:
            log.error("OTLP/HTTP request failed", exc_info=exc)
            text = "internal error"
        else:
            text = f"malformed HTTP request: {_quoted_reason(exc, message)}"
        manager = self._manager
        if isinstance(manager, _OtlpServer):
            manager.metrics.rejected_requests.labels(str(status)).inc()
        body = build_status(CODE_FOR_HTTP.get(status, code_pb2.INTERNAL), text).SerializeToString()
        response = web.Response(status=status, body=body, content_type=PROTOBUF)
        response.force_close()
        return response


def _quoted_reason(exc: BaseException | None, message: str | None) -> str:
    reason = message or (exc.message if isinstance(exc, HttpProcessingError) else "") or type(exc).__name__
    return _UNPRINTABLE.sub(" ", str(reason)).strip()[:200]


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


class _OtlpServer(web.Server):
    """aiohttp's connection factory with `_OtlpRequestHandler` and a cap on open connections: one over the cap
    is answered 503 (with Retry-After) and closed before its request is read."""

    metrics: ForwarderMetrics
    max_connections: int
    busy_answer: bytes

    def __call__(self) -> RequestHandler:
        return _OtlpRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self.connections) > self.max_connections:
            self.metrics.rejected_requests.labels("503").inc()
            transport.write(self.busy_answer)
            transport.close()


def _busy_answer(retry_after: float) -> bytes:
    seconds = max(1, round(retry_after))
    status = build_status(code_pb2.UNAVAILABLE, "too many open connections; retry later", retry_after=seconds)
    body = status.SerializeToString()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Content-Type: {PROTOBUF}\r\nContent-Length: {len(body)}\r\nRetry-After: {seconds}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def http_runner(server: web.Server, *, settings: ForwarderSettings) -> web.ServerRunner:
    """Runs `server`; at shutdown, requests in flight get `receiver_grace` to finish."""
    return web.ServerRunner(server, handle_signals=False, shutdown_timeout=receiver_grace(settings))

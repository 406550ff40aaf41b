"""The OTLP/HTTP receiver (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`).

Handlers are thin: check the request, read and inflate the body with bounds, turn OTLP/JSON into wire
bytes, and hand the rest to the `Intake`. Every error is a `google.rpc.Status` in the request's content
type with a 4xx (or 503) status — bad input never causes a 500 or a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from sentryroute.otlp_json import InvalidJson, parse_otlp_json, to_otlp_json
from sentryroute_forwarder.config import ForwarderSettings
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.receive.auth import BearerAuth
from sentryroute_forwarder.receive.inflate import CorruptBody, InflatedTooLarge, UnsupportedEncoding, inflate
from sentryroute_forwarder.receive.intake import Intake, Outcome, RetryLater
from sentryroute_forwarder.receive.services import SERVICES, OtlpService
from sentryroute_forwarder.receive.status import CODE_FOR_HTTP, build_status, retry_hint
from sentryroute_forwarder.route.wire import MalformedPayload

__all__ = ["build_http_app", "http_runner", "receiver_grace"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})

M = TypeVar("M", bound=Message)


class _Reject(Exception):
    """Ends a request with an error status; the message goes to the client in a google.rpc.Status."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class _Limits:
    max_request_bytes: int
    read_timeout: float
    retry_after: float


class _OtlpHandler:
    def __init__(self, *, service: OtlpService, intake: Intake, auth: BearerAuth | None, limits: _Limits) -> None:
        self._service = service
        self._intake = intake
        self._auth = auth
        self._limits = limits

    async def handle(self, request: web.Request) -> web.Response:
        if self._auth is not None and not self._auth.allows(request.headers.get("Authorization")):
            raise _Reject(401, "missing or wrong bearer token", headers={"WWW-Authenticate": 'Bearer realm="otlp"'})
        media_type = request.content_type
        if media_type not in _PROTOBUF_TYPES and media_type != JSON:
            raise _Reject(415, f"unsupported Content-Type: use {PROTOBUF} or {JSON}")
        body = await self._read_body(request)
        signal, is_json = self._service.signal, media_type == JSON
        if signal is None:
            outcome = self._intake.reject_metrics(self._decode(ExportMetricsServiceRequest, body, is_json=is_json))
        elif is_json:  # OTLP/JSON becomes wire bytes first: routing only ever reads the wire format
            message = self._decode(self._service.request_type, body, is_json=True)
            outcome = self._route(signal, message.SerializeToString())
        else:
            outcome = self._route(signal, body)
        if outcome.commit is not None:
            try:
                await outcome.commit
            except RetryLater as exc:
                raise self._retry_later(exc) from None
        return _respond(request, 200, self._service.response(outcome))

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._limits.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _Reject(413, f"request body is larger than {limit} bytes")
        try:
            async with asyncio.timeout(self._limits.read_timeout):
                raw = await request.read()
        except TimeoutError:
            raise _Reject(408, f"request body not received within {self._limits.read_timeout:g}s") from None
        except web.HTTPRequestEntityTooLarge:
            raise _Reject(413, f"request body is larger than {limit} bytes") from None
        except HttpProcessingError as exc:  # broken chunked encoding and the like
            raise _Reject(400, f"malformed HTTP body: {exc.message[:200]}") from None
        except ConnectionResetError:  # the client went away; nobody will read the answer
            raise _Reject(400, "connection lost while reading the body") from None
        try:
            return inflate(raw, encoding=request.headers.get("Content-Encoding", ""), limit=limit)
        except UnsupportedEncoding as exc:
            raise _Reject(415, str(exc)) from None
        except InflatedTooLarge as exc:
            raise _Reject(413, str(exc)) from None
        except CorruptBody as exc:
            raise _Reject(400, str(exc)) from None

    @staticmethod
    def _decode(message_type: type[M], body: bytes, *, is_json: bool) -> M:
        if is_json:
            try:
                return parse_otlp_json(body, message_type)
            except InvalidJson as exc:
                raise _Reject(400, str(exc)) from None
        try:
            return message_type.FromString(body)
        except DecodeError:
            raise _Reject(400, f"body is not a valid {message_type.DESCRIPTOR.name}") from None

    def _route(self, signal: Signal, body: bytes) -> Outcome:
        try:
            return self._intake.accept(signal, body)
        except MalformedPayload as exc:
            raise _Reject(400, f"body is not a valid {self._service.request_type.DESCRIPTOR.name}: {exc}") from None
        except RetryLater as exc:
            raise self._retry_later(exc) from None

    def _retry_later(self, refusal: RetryLater) -> _Reject:
        seconds = max(1, round(retry_hint(refusal.retry_after, self._limits.retry_after)))
        message = f"{refusal.message}; retry in {seconds}s"
        return _Reject(refusal.status, message, headers={"Retry-After": str(seconds)})


def _respond(
    request: web.Request, status: int, message: Message, *, headers: dict[str, str] | None = None
) -> web.Response:
    """`message` encoded like the request (JSON for JSON requests, else protobuf), never compressed."""
    if request.content_type == JSON:
        return web.Response(status=status, body=to_otlp_json(message), content_type=JSON, headers=headers)
    return web.Response(status=status, body=message.SerializeToString(), content_type=PROTOBUF, headers=headers)


def _error_response(request: web.Request, status: int, message: str, headers: dict[str, str]) -> web.Response:
    retry_after = float(headers["Retry-After"]) if "Retry-After" in headers else None
    body = build_status(CODE_FOR_HTTP.get(status, CODE_FOR_HTTP[400]), message, retry_after=retry_after)
    response = _respond(request, status, body, headers=headers)
    if status in (408, 413):
        response.force_close()  # the rest of the body was not read
    return response


def _make_error_middleware(metrics: ForwarderMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def errors_as_status(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Reject as reject:
            metrics.rejected_requests.labels(str(reject.status)).inc()
            return _error_response(request, reject.status, reject.message, reject.headers)
        except web.HTTPException as exc:  # routing: 404 unknown path, 405 wrong method
            if exc.status < 400:
                raise
            metrics.rejected_requests.labels(str(exc.status)).inc()
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            return _error_response(request, exc.status, exc.reason, headers)

    return errors_as_status


def build_http_app(
    *, intake: Intake, settings: ForwarderSettings, metrics: ForwarderMetrics, auth: BearerAuth | None
) -> web.Application:
    limits = _Limits(settings.max_request_bytes, settings.read_timeout, settings.retry_after)
    # The body is read by the handlers (bounded and with a timeout), so aiohttp's own limit is only a backstop.
    app = web.Application(client_max_size=settings.max_request_bytes, middlewares=[_make_error_middleware(metrics)])
    for service in SERVICES:
        app.router.add_post(
            service.http_path, _OtlpHandler(service=service, intake=intake, auth=auth, limits=limits).handle
        )
    return app


def receiver_grace(settings: ForwarderSettings) -> float:
    """How long requests in flight may take to finish at shutdown: a share of `--shutdown-timeout`, the rest
    is for flushing the queues."""
    return min(5.0, settings.shutdown_timeout / 4)


def http_runner(app: web.Application, *, settings: ForwarderSettings) -> web.AppRunner:
    """A runner that inflates nothing by itself and closes connections idle (or stuck in headers) too long."""
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        auto_decompress=False,
        keepalive_timeout=settings.read_timeout,
        # After an early answer (413, 408), unread body is drained this long so the client sees the answer.
        lingering_time=min(2.0, settings.read_timeout),
        shutdown_timeout=receiver_grace(settings),
    )

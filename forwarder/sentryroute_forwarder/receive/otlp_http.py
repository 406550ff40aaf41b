"""The OTLP/HTTP receiver (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`).

The connections are `http_protocol.HttpServer`'s; this module decides what to do with a request: check its
head before the body is read, inflate the body with bounds, turn OTLP/JSON into wire bytes, and hand the
rest to the `Intake`. Every error is a `google.rpc.Status` in the request's content
type with a 4xx (or 503) status — bad input never causes a 500 or a hang.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from sentryroute.otlp_json import InvalidJson, parse_otlp_json, to_otlp_json
from sentryroute_forwarder.config import ForwarderSettings
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.peers.address import http_peer_host
from sentryroute_forwarder.receive.auth import BearerAuth
from sentryroute_forwarder.receive.http_answer import Answer
from sentryroute_forwarder.receive.http_protocol import HttpServer, Request
from sentryroute_forwarder.receive.inflate import (
    CorruptBody,
    InflatedTooLarge,
    UnsupportedEncoding,
    inflate,
    inflate_within,
)
from sentryroute_forwarder.receive.intake import Intake, Outcome, Overloaded, Reservation, RetryLater
from sentryroute_forwarder.receive.offload import Offload
from sentryroute_forwarder.receive.services import SERVICES, OtlpService
from sentryroute_forwarder.receive.status import CODE_FOR_HTTP, build_status, retry_hint
from sentryroute_forwarder.route.wire import MalformedPayload

__all__ = ["build_http_server", "receiver_grace"]

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
#: A compressed protobuf body up to this size is inflated on the event loop while its output stays within
#: `_ON_LOOP_INFLATED_BYTES` (ISA-L: about 0.4 ms per MiB); one that inflates further starts again on a decode
#: worker. A 10 x 50 request gzips to about 30 KB: the thread hop cost more than inflating it.
_ON_LOOP_COMPRESSED_BYTES = 64 * 1024
_ON_LOOP_INFLATED_BYTES = 1024 * 1024


class _Receiver:
    """The OTLP/HTTP server's `Handler`: the path picks the OTLP service, the head is checked before the body
    is read (method, auth, Content-Type, concurrency, a reservation for the declared size), and every
    refusal is a google.rpc.Status in the request's content type."""

    def __init__(
        self,
        *,
        intake: Intake,
        auth: BearerAuth | None,
        limits: _Limits,
        offload: Offload,
        metrics: ForwarderMetrics,
    ) -> None:
        self.intake = intake
        self._auth = auth
        self.limits = limits
        self.offload = offload
        self._metrics = metrics
        self._services = {service.http_path: service for service in SERVICES}
        self.in_progress = 0

    def begin(self, request: Request) -> _OtlpExchange | Answer:
        try:
            service = self._services.get(request.path)
            if service is None:
                raise _Reject(404, "Not Found")
            if request.method != "POST":
                raise _Reject(405, "Method Not Allowed", headers={"Allow": "POST"})
            if self._auth is not None and not self._auth.allows(request.headers.get("authorization")):
                raise _Reject(401, "missing or wrong bearer token", headers={"WWW-Authenticate": 'Bearer realm="otlp"'})
            media_type = request.content_type
            if media_type not in _PROTOBUF_TYPES and media_type != JSON:
                raise _Reject(415, f"unsupported Content-Type: use {PROTOBUF} or {JSON}")
            if self.in_progress >= self.limits.max_concurrent_requests:
                raise self.retry_later(Overloaded("too many requests in progress"))
            limit = self.limits.max_request_bytes
            declared = request.content_length
            if declared is not None and declared > limit:
                raise _Reject.too_large(limit)
            # Reserved before a byte of the body is read: a body that cannot fit is refused at once.
            reservation = self.intake.reserve(declared or 0)
        except (_Reject, RetryLater) as exc:
            return self.refusal(request, exc)
        self.in_progress += 1
        return _OtlpExchange(self, service, request, reservation)

    def refuse(self, request: Request | None, status: int, message: str) -> Answer:
        return self.refusal(request, _Reject(status, message))

    def refusal(self, request: Request | None, exc: _Reject | RetryLater) -> Answer:
        """The answer to a refused request, counted in `sentryroute_rejected_requests_total`."""
        reject = self.retry_later(exc) if isinstance(exc, RetryLater) else exc
        self._metrics.rejected_requests.labels(str(reject.status)).inc()
        return _error_response(request, reject.status, reject.message, reject.headers)

    async def maybe_offload(self, size: int, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on the event loop for small inputs, else on a decode worker."""
        if size < _ON_LOOP_BYTES:
            return function(*args)
        return await self.offload.run(function, *args)

    def retry_later(self, refusal: RetryLater) -> _Reject:
        seconds = max(1, round(retry_hint(refusal.retry_after, self.limits.retry_after)))
        message = f"{refusal.message}; retry in {seconds}s"
        return _Reject(refusal.status, message, headers={"Retry-After": str(seconds)})


class _OtlpExchange:
    """One accepted head until its answer: the body is counted against `--max-request-bytes` and the
    reservation as it arrives, then inflated, decoded and handed to the intake — on the event loop when
    nothing in it needs a decode worker or a wait (an SDK-sized protobuf request), else in a task."""

    __slots__ = ("_open", "_receiver", "_request", "_reservation", "_service")

    def __init__(self, receiver: _Receiver, service: OtlpService, request: Request, reservation: Reservation) -> None:
        self._receiver = receiver
        self._service = service
        self._request = request
        self._reservation = reservation
        self._open = True

    def received(self, size: int) -> Answer | None:
        try:
            self._check_size(size)
        except (_Reject, RetryLater) as exc:
            self.discard()
            return self._receiver.refusal(self._request, exc)
        return None

    def complete(self, body: bytes) -> Answer | Awaitable[Answer]:
        receiver, request = self._receiver, self._request
        try:
            self._check_size(len(body))
            encoding = request.headers.get("content-encoding", "")
            identity = not encoding or encoding.strip().lower() == "identity"
            if (
                self._service.signal is not None
                and request.content_type != JSON
                and (identity or len(body) <= _ON_LOOP_COMPRESSED_BYTES)
                and (origin := receiver.intake.origin_now(self._peer_host())) is not None
                and (inflated := body if identity else self._inflate_on_loop(body, encoding)) is not None
            ):
                if not identity:
                    self._reservation.grow(len(body) + len(inflated))
                body = inflated
                outcome = receiver.intake.accept(
                    self._service.signal, body, reservation=self._reservation, origin=origin
                )
                if outcome.commit is None:
                    self.discard()
                    return _respond(request, 200, self._service.response(outcome))
                return self._answer_after(outcome.commit, outcome)
        except (_Reject, RetryLater, MalformedPayload) as exc:
            self.discard()
            return self._refused(exc)
        return self._answer_after(self._process(body, encoding), None)

    def discard(self) -> None:
        if self._open:
            self._open = False
            self._receiver.in_progress -= 1
            self._reservation.release()

    async def _answer_after(self, waiting: Awaitable[Any], outcome: Outcome | None) -> Answer:
        """The answer once `waiting` is done: the commit of `outcome`, or the processing that gives one."""
        try:
            if outcome is None:
                outcome = cast("Outcome", await waiting)
                if outcome.commit is not None:
                    await outcome.commit
            else:
                await waiting
        except (_Reject, RetryLater, MalformedPayload) as exc:
            return self._refused(exc)
        finally:
            self.discard()
        return _respond(self._request, 200, self._service.response(outcome))

    async def _process(self, raw: bytes, encoding: str) -> Outcome:
        """Inflate, decode and route a body that needs a decode worker or a wait; raises like `accept`."""
        receiver, request = self._receiver, self._request
        is_json = request.content_type == JSON
        body = raw
        if encoding and encoding.strip().lower() != "identity":
            body = await receiver.maybe_offload(len(raw), self._inflate, raw, encoding)
        self._reservation.grow(len(raw) + len(body))
        del raw
        max_json = receiver.limits.max_json_bytes
        if is_json and len(body) > max_json:
            raise _Reject(413, f"OTLP/JSON body is larger than {max_json} bytes: use protobuf")
        signal = self._service.signal
        if signal is None:
            metrics = await receiver.maybe_offload(len(body), _decode, ExportMetricsServiceRequest, body, is_json)
            return receiver.intake.reject_metrics(metrics)
        if is_json:  # OTLP/JSON becomes wire bytes first: routing only ever reads the wire format
            message = await receiver.maybe_offload(len(body), _decode, self._service.request_type, body, True)
            body = message.SerializeToString()
            self._reservation.grow(len(body))
        # --namespace-from peer: who sent it (SPEC §6.1); else the resource attribute says it
        origin = await receiver.intake.origin_of(self._peer_host())
        return receiver.intake.accept(signal, body, reservation=self._reservation, origin=origin)

    def _check_size(self, size: int) -> None:
        """The body so far is within `--max-request-bytes` and reserved (chunked bodies declare no size)."""
        limit = self._receiver.limits.max_request_bytes
        if size > limit:
            raise _Reject.too_large(limit)
        self._reservation.grow(size)

    def _inflate(self, raw: bytes, encoding: str) -> bytes:
        limit = self._receiver.limits.max_request_bytes
        return self._refusing_bad_bodies(lambda: inflate(raw, encoding=encoding, limit=limit))

    def _inflate_on_loop(self, raw: bytes, encoding: str) -> bytes | None:
        """The inflated body, or None when it inflates past what the event loop should spend on it."""
        limit = self._receiver.limits.max_request_bytes
        return self._refusing_bad_bodies(
            lambda: inflate_within(raw, encoding=encoding, limit=limit, budget=_ON_LOOP_INFLATED_BYTES)
        )

    @staticmethod
    def _refusing_bad_bodies(inflating: Callable[[], T]) -> T:
        try:
            return inflating()
        except UnsupportedEncoding as exc:
            raise _Reject(415, str(exc)) from None
        except InflatedTooLarge as exc:
            raise _Reject(413, str(exc)) from None
        except CorruptBody as exc:
            raise _Reject(400, str(exc)) from None

    def _peer_host(self) -> str | None:
        return http_peer_host(self._request.peername)

    def _refused(self, exc: _Reject | RetryLater | MalformedPayload) -> Answer:
        if isinstance(exc, MalformedPayload):
            exc = _Reject(400, f"body is not a valid {self._service.request_type.DESCRIPTOR.name}: {exc}")
        return self._receiver.refusal(self._request, exc)


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
    request: Request | None,
    status: int,
    message: Message,
    *,
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> Answer:
    """`message` encoded like the request (JSON for JSON requests, else protobuf), never compressed."""
    if request is not None and request.content_type == JSON:
        return Answer(status, JSON, to_otlp_json(message), headers, close=close)
    return Answer(status, PROTOBUF, message.SerializeToString(), headers, close=close)


def _error_response(request: Request | None, status: int, message: str, headers: dict[str, str]) -> Answer:
    retry_after = float(headers["Retry-After"]) if "Retry-After" in headers else None
    code = CODE_FOR_HTTP.get(status, code_pb2.INTERNAL if status >= 500 else CODE_FOR_HTTP[400])
    body = build_status(code, message, retry_after=retry_after)
    # 408, 413: the rest of the body was not read, so the connection cannot carry another request
    return _respond(request, status, body, headers=headers, close=status in (408, 413))


def build_http_server(
    *,
    intake: Intake,
    settings: ForwarderSettings,
    metrics: ForwarderMetrics,
    auth: BearerAuth | None,
    offload: Offload,
) -> HttpServer:
    """The OTLP/HTTP server (not listening yet): closes connections idle (or stuck in a request) too long,
    caps open connections, inflates with bounds and answers every error with a google.rpc.Status."""
    limits = _Limits(
        settings.max_request_bytes,
        settings.read_timeout,
        settings.retry_after,
        settings.max_concurrent_requests,
        settings.max_json_bytes,
    )
    receiver = _Receiver(intake=intake, auth=auth, limits=limits, offload=offload, metrics=metrics)
    return HttpServer(
        receiver,
        read_timeout=settings.read_timeout,
        max_connections=settings.max_connections,
        busy_answer=_busy_answer(settings.retry_after),
        on_busy=metrics.rejected_requests.labels("503").inc,
    )


def receiver_grace(settings: ForwarderSettings) -> float:
    """How long requests in flight may take to finish at shutdown: a share of `--shutdown-timeout`, the rest
    is for flushing the queues."""
    return min(5.0, settings.shutdown_timeout / 4)


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

"""The OTLP/gRPC receiver (TraceService, LogsService, MetricsService `Export`).

grpcio's synchronous server, not `grpc.aio`: per call it costs about half as much CPU (measured on one core
with h2load: ~6,800 vs ~3,400 bare calls/s), and gRPC's framework cost is most of an SDK-sized request.
Handlers run in server threads and hand the request to the event loop through a `LoopBridge`, so the
intake, the queue and the exporters stay single-threaded.

The handlers are registered generically with identity (de)serializers, so a traces or logs request reaches
the router as wire bytes, never as a decoded message. Retryable refusals carry a `google.rpc.RetryInfo` in
`grpc-status-details-bin`: OTLP gRPC clients retry only when it is present.

`Export` is unary on the wire, but its handler is registered as stream-unary: grpcio's unary path keeps the
request message referenced from its own frame until the handler returns, and a handler whose answer is held
(pacing) would pin a whole request (~250 KB on the 10 x 50 benchmark shapes, 16 held at once) after its data
was already copied into the queue. Taking the one message from the request iterator, the handler holds the
only reference and lets it go once the request is routed. Like grpcio's unary handler, it reads exactly the
first message.

Calls past `--grpc-max-concurrent-requests` are refused by `_ConcurrencyBound`, not by grpcio's
`maximum_concurrent_rpcs`: grpcio's refusal is RESOURCE_EXHAUSTED without RetryInfo, which spec-following
OTLP clients (the Go SDK, the Collector's otlp exporter) do not retry, so they drop that data. The bound is
decided where grpcio looks up a call's handler (before any thread runs it or its message is read) and the
refusal carries RetryInfo like every other pushback.

A call's message must arrive within `--read-timeout` of its start, as an OTLP/HTTP body must (`_MessageDeadlines`):
grpcio's request iterator waits for it without a timeout, so calls opened and never given their message would
otherwise hold the bound (and their threads) closed to every other client for as long as their connection
lives.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from sentryroute_forwarder.config import ForwarderSettings
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.peers.address import grpc_peer_host
from sentryroute_forwarder.receive.auth import BearerAuth
from sentryroute_forwarder.receive.bridge import LoopBridge
from sentryroute_forwarder.receive.intake import Intake, Outcome, RetryLater
from sentryroute_forwarder.receive.services import SERVICES, OtlpService
from sentryroute_forwarder.receive.status import build_status, retry_hint
from sentryroute_forwarder.receive.tls import ReloadingTls
from sentryroute_forwarder.route.origin import Origin
from sentryroute_forwarder.route.wire import MalformedPayload

__all__ = ["start_grpc_server"]

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
_EMPTY_RESPONSE = b""
#: Threads that run handlers. Each waits while the event loop routes its request (and, with a disk queue,
#: commits it), so more threads than cores let group commits batch; measured: see README's performance section.
HANDLER_THREADS = 16
#: Threads beyond the admitted calls' own, so that a refusal never waits behind calls held by pacing.
REFUSAL_THREADS = 2


class _PeerNotSeen(Exception):
    """The request's peer address belongs to no pod the index knows yet: wait for the Pod watch first."""


class _MessageTimedOut(grpc.RpcError):
    """The call's message did not arrive within `--read-timeout`; the call was cancelled (`_MessageDeadlines`)."""


class _MessageDeadlines:
    """Cancels calls whose request message has not arrived `timeout` after they began waiting for it.

    One thread looks over the waiting calls four times per `timeout` (a call is cancelled between 1 and 1.25 x
    `timeout`); a call costs two lock round trips here. The client sees CANCELLED, which OTLP clients retry; the
    call is counted in `sentryroute_rejected_requests_total{code="CANCELLED"}`.
    """

    def __init__(self, timeout: float, metrics: ForwarderMetrics) -> None:
        self._timeout = timeout
        self._metrics = metrics
        self._waiting: dict[int, tuple[float, grpc.ServicerContext]] = {}
        self._lock = threading.Lock()
        self._tokens = itertools.count()
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="sentryroute-grpc-deadlines", daemon=True).start()

    def receive(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        """The call's message (StopIteration: half-closed without one; grpc.RpcError: cancelled first, by the
        client or, as `_MessageTimedOut`, by this watch)."""
        token = next(self._tokens)
        with self._lock:
            self._waiting[token] = (time.monotonic() + self._timeout, context)
        try:
            return next(requests)
        finally:
            with self._lock:
                expired = self._waiting.pop(token, None) is None
            if expired:  # cancelled already, under the lock: the client was told, whatever arrived meanwhile
                raise _MessageTimedOut  # (instead of the message or the error: the call is over)

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._timeout / 4):
            now = time.monotonic()
            with self._lock:
                expired = [token for token, (deadline, _) in self._waiting.items() if deadline <= now]
                if expired:  # counted before the clients can see CANCELLED
                    self._metrics.rejected_requests.labels(grpc.StatusCode.CANCELLED.name).inc(len(expired))
                for token in expired:
                    _, context = self._waiting.pop(token)
                    context.cancel()


class _Call:
    """One request on its way to the event loop. The loop takes `message` out once the request is routed, so
    that an answer held afterwards (pacing) does not keep the message alive."""

    __slots__ = ("host", "limit", "message", "origin")

    def __init__(self, message: bytes, host: str | None, limit: float | None) -> None:
        self.message: bytes | None = message
        self.host = host
        self.limit = limit  # the longest the answer may be held (pacing)
        self.origin: Origin | None = None  # set once waited for (--namespace-from peer)


class _ExportHandler:
    """One `Export` method. Runs in a server thread; the intake runs on the event loop (see `LoopBridge`)."""

    def __init__(
        self,
        *,
        service: OtlpService,
        intake: Intake,
        bridge: LoopBridge,
        auth: BearerAuth | None,
        metrics: ForwarderMetrics,
        retry_after: float,
        deadlines: _MessageDeadlines,
    ) -> None:
        self._service = service
        self._deadlines = deadlines
        self._intake = intake
        self._bridge = bridge
        self._auth = auth
        self._metrics = metrics
        self._retry_after = retry_after

    def export(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        if self._auth is not None and not self._auth.allows(_metadata(context, "authorization")):
            self._abort(context, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        # --namespace-from peer: the peer address, read here in the server thread (SPEC §6.1).
        host = grpc_peer_host(context.peer()) if self._intake.peer_mode else None
        # A held answer (pacing) may take at most half of what is left of the client's deadline.
        remaining = context.time_remaining()
        limit = remaining / 2 if remaining is not None else None
        try:
            call = _Call(self._deadlines.receive(requests, context), host, limit)
        except StopIteration:  # half-closed without a message (grpcio's unary handler answers the same)
            self._abort(context, grpc.StatusCode.UNIMPLEMENTED, "Export requires exactly one request message")
        except grpc.RpcError:  # cancelled before its message arrived (by the client, or after --read-timeout)
            return _EMPTY_RESPONSE
        try:
            try:
                outcome = self._bridge.call(self._accept, call)
            except _PeerNotSeen:  # a pod the watch has not delivered yet: wait for it (bounded), then route
                call.origin = self._bridge.wait(self._intake.origin_of(host))
                outcome = self._bridge.call(self._accept, call)
        except (MalformedPayload, DecodeError) as exc:
            name = self._service.request_type.DESCRIPTOR.name
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {name}: {exc}")
        except RetryLater as exc:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.status == 429 else grpc.StatusCode.UNAVAILABLE
            self._abort(context, code, exc.message, retry=retry_hint(exc.retry_after, self._retry_after))
        if not outcome.rejected:
            return _EMPTY_RESPONSE  # every Export*ServiceResponse of a full success is the empty message
        return self._service.response(outcome).SerializeToString()

    def _accept(self, call: _Call) -> Outcome:
        """On the event loop: route one request; the message is taken out of `call` once it is routed (or
        refused), so that its answer's hold does not keep it."""
        message = call.message
        assert message is not None  # routed at most once
        if self._service.signal is None:
            call.message = None
            return self._intake.reject_metrics(ExportMetricsServiceRequest.FromString(message))
        origin = call.origin
        if origin is None:
            origin = self._intake.origin_now(call.host)
            if origin is None:
                raise _PeerNotSeen  # the message stays for the second attempt
        call.message = None
        return self._intake.accept(self._service.signal, message, origin=origin, hold_limit=call.limit)

    def _abort(
        self, context: grpc.ServicerContext, code: grpc.StatusCode, message: str, *, retry: float | None = None
    ) -> NoReturn:
        _abort(context, self._metrics, code, message, retry=retry)


def _abort(
    context: grpc.ServicerContext,
    metrics: ForwarderMetrics,
    code: grpc.StatusCode,
    message: str,
    *,
    retry: float | None = None,
) -> NoReturn:
    """End the call with `code`; with `retry`, a RetryInfo in the status details (what OTLP clients read) and
    the same RetryInfo as `google.rpc.retryinfo-bin` (what the OpenTelemetry Python SDK reads for its delay)."""
    metrics.rejected_requests.labels(code.name).inc()
    status = build_status(code.value[0], message, retry_after=retry)
    trailers: tuple[tuple[str, str | bytes], ...] = ((_STATUS_DETAILS_KEY, status.SerializeToString()),)
    if retry is not None:
        trailers += ((_RETRY_INFO_KEY, status.details[0].value),)
    context.set_trailing_metadata(trailers)
    context.abort(code, message)
    raise AssertionError("grpc's abort returns only by raising")  # pragma: no cover


class _ConcurrencyBound(grpc.GenericRpcHandler):
    """At most `limit` Export calls in progress; a call past it is refused with RESOURCE_EXHAUSTED and RetryInfo.

    grpcio calls `service` in its one polling thread for every new call, before the call is given a thread or
    its message is read; an admitted call is counted until its handler returns (answer held by pacing
    included). A refusal runs on one of the executor's spare threads (`REFUSAL_THREADS`: admitted calls never
    take them all) and never reads the message, so memory stays bounded by `limit` messages being received.
    """

    def __init__(
        self,
        exports: Mapping[str, Callable[[Iterator[bytes], grpc.ServicerContext], bytes]],
        *,
        limit: int,
        metrics: ForwarderMetrics,
        retry_after: float,
    ) -> None:
        self._limit = limit
        self._active = 0
        self._lock = threading.Lock()  # `service` increments in grpcio's polling thread, handlers decrement
        self._metrics = metrics
        self._retry_after = retry_after
        self._handlers = {
            method: grpc.stream_unary_rpc_method_handler(  # unary on the wire; see the module's docstring
                self._admitted(export),
                request_deserializer=None,  # raw bytes: the router walks the wire format itself
                response_serializer=None,  # the handler returns the serialized response
            )
            for method, export in exports.items()
        }
        self._refusal = grpc.stream_unary_rpc_method_handler(self._refuse)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._handlers.get(handler_call_details.method)
        if handler is None:
            return None  # grpcio answers UNIMPLEMENTED
        with self._lock:
            if self._active >= self._limit:
                return self._refusal
            self._active += 1
        return handler

    def _admitted(
        self, export: Callable[[Iterator[bytes], grpc.ServicerContext], bytes]
    ) -> Callable[[Iterator[bytes], grpc.ServicerContext], bytes]:
        def run(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
            try:
                return export(requests, context)
            finally:
                with self._lock:
                    self._active -= 1

        return run

    def _refuse(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> NoReturn:
        message = f"more than --grpc-max-concurrent-requests ({self._limit}) calls in progress"
        retry = retry_hint(None, self._retry_after)
        _abort(context, self._metrics, grpc.StatusCode.RESOURCE_EXHAUSTED, message, retry=retry)


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None


def _probe_bind(host: str, port: int) -> None:
    """Bind and release `host:port` with a plain socket first, so that an address in use is one OSError line.

    gRPC's own bind failure is a C-level log line plus a RuntimeError naming no cause; the probe reports
    errno and text exactly like the HTTP receiver does. Port 0 (any free port) needs no probe.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family, reuse_port=False):
            pass
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(exc.errno, f"cannot listen for OTLP/gRPC on {where}: {reason}") from None


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class GrpcReceiver:
    """The running gRPC server and its handler threads."""

    def __init__(self, server: grpc.Server, executor: ThreadPoolExecutor, deadlines: _MessageDeadlines) -> None:
        self._server = server
        self._executor = executor
        self._deadlines = deadlines

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let calls in flight finish for at most `grace` seconds (their intake runs on the
        event loop, which stays free meanwhile)."""
        stopped = self._server.stop(grace)
        await asyncio.to_thread(stopped.wait)
        self._executor.shutdown(wait=False)
        self._deadlines.stop()


async def start_grpc_server(
    *,
    intake: Intake,
    settings: ForwarderSettings,
    metrics: ForwarderMetrics,
    auth: BearerAuth | None,
    tls: ReloadingTls | None,
) -> tuple[GrpcReceiver, int]:
    """Start the server on `--otlp-grpc`; returns it and the port actually bound."""
    # A thread for every call admitted (an answer held by pacing must never keep another call from a thread),
    # and spare ones for refusals.
    workers = max(HANDLER_THREADS, settings.grpc_max_concurrent_requests) + REFUSAL_THREADS
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sentryroute-grpc")
    server = grpc.server(
        executor,
        # No maximum_concurrent_rpcs: its refusal has no RetryInfo (see `_ConcurrencyBound`).
        options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),  # checked after decompression
            ("grpc.so_reuseport", 0),
            ("grpc.max_allowed_incoming_connections", settings.max_connections),
            ("grpc.max_concurrent_streams", min(100, settings.grpc_max_concurrent_requests)),
            ("grpc.max_connection_idle_ms", _millis(settings.read_timeout)),
            ("grpc.max_connection_age_ms", _millis(settings.max_connection_age)),
            ("grpc.max_connection_age_grace_ms", _millis(settings.read_timeout)),
        ],
    )
    bridge = LoopBridge(asyncio.get_running_loop())
    deadlines = _MessageDeadlines(settings.read_timeout, metrics)
    exports = {
        f"/{service.grpc_service}/Export": _ExportHandler(
            service=service,
            intake=intake,
            bridge=bridge,
            auth=auth,
            metrics=metrics,
            retry_after=settings.retry_after,
            deadlines=deadlines,
        ).export
        for service in SERVICES
    }
    bound = _ConcurrencyBound(
        exports,
        limit=settings.grpc_max_concurrent_requests,
        metrics=metrics,
        retry_after=settings.retry_after,
    )
    server.add_generic_rpc_handlers([bound])
    address = str(settings.otlp_grpc)
    _probe_bind(settings.otlp_grpc.host, settings.otlp_grpc.port)
    try:
        if tls is not None:
            port = server.add_secure_port(address, tls.grpc_credentials())
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpc's "Failed to bind": lost a race with another process after the probe
        port = 0
    if not port:
        executor.shutdown(wait=False)
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    deadlines.start()
    server.start()
    return GrpcReceiver(server, executor, deadlines), port

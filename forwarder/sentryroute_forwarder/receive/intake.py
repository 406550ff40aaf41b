"""What every receiver does with a decoded-enough request body: route it, count it, hand it to the queue.

Shared by OTLP/HTTP and OTLP/gRPC so both answer the same way; the receivers only translate the
outcome (or the exceptions below) into their protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Overloaded, Pipeline, RetryLater, Signal
from sentryroute_forwarder.peers.resolver import PeerResolver, PodsNotListed
from sentryroute_forwarder.receive.notices import DropNotices
from sentryroute_forwarder.route.origin import ATTRIBUTE, Origin
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.split import SplitResult, split_records
from sentryroute_forwarder.route.validate import INVALID, validate_request
from sentryroute_forwarder.route.wire import MalformedPayload

__all__ = [
    "METRICS_SIGNAL",
    "Intake",
    "NotReady",
    "Outcome",
    "Overloaded",
    "Reservation",
    "RetryLater",
    "count_data_points",
]

#: Label of OTLP metrics in the forwarder's own metrics (they are not a routed `Signal`).
METRICS_SIGNAL = "metrics"
METRICS_UNSUPPORTED = "metrics_unsupported"
_METRICS_MESSAGE = "Sentry does not ingest OTLP metrics: every data point was dropped by sentryroute"
_ITEM_NAMES = {Signal.TRACES: "spans", Signal.LOGS: "log records"}


class NotReady(RetryLater):
    """No routes table loaded yet: the client should retry (HTTP 503 / gRPC UNAVAILABLE)."""

    def __init__(self) -> None:
        super().__init__("no routes table loaded yet")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the receiver reports back: `partial_success` when `rejected` > 0."""

    rejected: int = 0
    message: str = ""
    commit: Awaitable[None] | None = None  # awaited before answering: the data is then durable (and paced)


class Reservation:
    """Bytes of one request in flight (its body as read, inflated and decoded), counted against `--max-bytes`
    together with the queue, so bodies being received cannot take the process past the bound."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake
        self.nbytes = 0

    def grow(self, total: int) -> None:
        """Hold `total` bytes (if more than now); raises Overloaded when they do not fit."""
        if total > self.nbytes:
            self._intake._claim(total - self.nbytes)
            self.nbytes = total

    def release(self) -> None:
        self._intake._unclaim(self.nbytes)
        self.nbytes = 0

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Intake:
    """Routes requests with the router of the current table and offers the parts to the pipeline."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        metrics: ForwarderMetrics,
        notices: DropNotices | None = None,
        peers: PeerResolver | None = None,
    ) -> None:
        """`peers`: with `--namespace-from peer`, resolves each request's peer address (SPEC §6.1)."""
        self._pipeline = pipeline
        self._metrics = metrics
        self._received_items = {signal: metrics.received_items.labels(signal.value) for signal in Signal}  # bound once
        self._notices = notices or DropNotices()
        self._peers = peers
        self.router: Router | None = None  # replaced on every table change
        self._in_flight = 0  # bytes reserved by requests being received
        # Read when scraped, not written twice per request (a gauge's set takes a lock).
        metrics.receiving_bytes.set_function(lambda: self._in_flight)

    def reserve(self, nbytes: int) -> Reservation:
        """A reservation of `nbytes` for a request about to be read; raises NotReady or Overloaded at once."""
        if self.router is None:
            raise NotReady
        reservation = Reservation(self)
        reservation.grow(nbytes)
        return reservation

    def _claim(self, nbytes: int) -> None:
        if not self._pipeline.has_room(self._in_flight + nbytes):
            raise Overloaded(
                "the forwarder's queue is full", retry_after=self._pipeline.retry_after(self._in_flight + nbytes)
            )
        self._in_flight += nbytes

    def _unclaim(self, nbytes: int) -> None:
        self._in_flight -= nbytes

    @property
    def peer_mode(self) -> bool:
        """True with `--namespace-from peer`: receivers pass each request's peer address (SPEC §6.1)."""
        return self._peers is not None

    def origin_now(self, host: str | None) -> Origin | None:
        """`origin_of` without waiting: None when the address must be waited for (call `origin_of`)."""
        if self._peers is None:
            return ATTRIBUTE
        try:
            return self._peers.origin_now(host)
        except PodsNotListed:
            raise RetryLater("pods not listed yet (--namespace-from peer)") from None

    async def origin_of(self, host: str | None) -> Origin:
        """Whose namespace a request from peer `host` is routed by; raises RetryLater before the first Pod
        listing (`--namespace-from peer`)."""
        if self._peers is None:
            return ATTRIBUTE
        try:
            return await self._peers.origin_of(host)
        except PodsNotListed:
            raise RetryLater("pods not listed yet (--namespace-from peer)") from None

    def accept(
        self,
        signal: Signal,
        body: bytes,
        *,
        reservation: Reservation | None = None,
        origin: Origin = ATTRIBUTE,
        hold_limit: float | None = None,
    ) -> Outcome:
        """Validate and route `body` (an Export*ServiceRequest) as sent by `origin`; raises RetryLater
        (NotReady, Overloaded, ...) or MalformedPayload. Nothing is counted for a refused request: the client
        sends it again. `hold_limit`: the longest the client can wait for its answer (pacing), when known.

        Resource records that fail validation are dropped (`reason="invalid"`) and named in the outcome; when
        no record is valid the whole request is malformed (400 / INVALID_ARGUMENT).
        """
        router = self.router
        if router is None:
            raise NotReady
        # Bodies other requests are receiving count too; this request's own reservation is `body` itself.
        others = self._in_flight - (reservation.nbytes if reservation is not None else 0)
        if not self._pipeline.has_room(others + len(body)):
            raise Overloaded(
                "the forwarder's queue is full", retry_after=self._pipeline.retry_after(others + len(body))
            )
        validation = validate_request(signal, body, keys=router.keys)
        if validation.rejected and not validation.records:
            raise MalformedPayload(validation.describe_rejections())
        result = split_records(signal, body, validation.records, router, origin)
        if result.rewrites:
            self._metrics.namespace_rewrites.inc(result.rewrites)
        if validation.rejected:
            result.dropped[INVALID] = result.dropped.get(INVALID, 0) + validation.rejected_items
            result.items += validation.rejected_items
            result.notes.append(validation.describe_rejections())
        commit = self._pipeline.offer(result.parts, hold_limit=hold_limit) if result.parts else None
        for reason, items in result.dropped.items():
            self._metrics.dropped_items.labels(signal.value, reason).inc(items)
        if result.dropped_values:
            self._notices.note(_ITEM_NAMES[signal], result.dropped_values)
        self._received_items[signal].inc(result.items)
        return Outcome(result.rejected, _rejection_message(signal, result), commit)

    def reject_metrics(self, request: ExportMetricsServiceRequest) -> Outcome:
        """OTLP metrics are answered with success and every data point rejected (SPEC §6)."""
        points = count_data_points(request)
        self._metrics.dropped_items.labels(METRICS_SIGNAL, METRICS_UNSUPPORTED).inc(points)
        return Outcome(points, _METRICS_MESSAGE)


def count_data_points(request: ExportMetricsServiceRequest) -> int:
    points = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    points += len(getattr(metric, kind).data_points)
    return points


def _rejection_message(signal: Signal, result: SplitResult) -> str:
    if not result.rejected and not result.notes:
        return ""
    reasons = ", ".join(f"{reason}: {items}" for reason, items in sorted(result.dropped.items()))
    notes = "".join(f"; {note}" for note in result.notes)
    return f"sentryroute dropped {result.rejected} of {result.items} {_ITEM_NAMES[signal]} ({reasons}){notes}"

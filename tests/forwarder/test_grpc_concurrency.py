"""`--grpc-max-concurrent-requests` over real sockets: a call past it is refused with RESOURCE_EXHAUSTED and a
RetryInfo (grpcio's own refusal carries none, and spec-following OTLP clients drop what they cannot retry), and
the OpenTelemetry SDK's gRPC exporter retries it and delivers.

One call is kept in progress by pacing (the emulator stalls its project: its answer is held), so every wait is
on a condition, never on the clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sentryroute.emulator import SentryEmulator
from tests.forwarder.support import metric_value, wait_until
from tests.forwarder.test_pacing import FAST, SLOW, SPANS, body, held, start
from tests.forwarder.test_receive_grpc import retry_delay

#: Separate connections for separate clients: with a limit of 1, the forwarder allows one stream per
#: connection, so a second call on a shared connection would wait in the client instead of reaching it.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def refused(forwarder: Any) -> float:
    return metric_value(forwarder, "sentryroute_rejected_requests_total", {"code": "RESOURCE_EXHAUSTED"})


async def export(channel: grpc.aio.Channel, service: str, *, deadline: float) -> None:
    await trace_service_pb2_grpc.TraceServiceStub(channel).Export(
        ExportTraceServiceRequest.FromString(body(service)), timeout=deadline
    )


def sdk_spans(service: str, count: int) -> list[ReadableSpan]:
    """Spans as an instrumented service's SDK finishes them."""
    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("concurrency")
    for i in range(count):
        with tracer.start_as_current_span(f"{service}-{i}"):
            pass
    provider.shutdown()
    return list(collected.get_finished_spans())


async def test_a_call_past_the_bound_is_refused_with_retry_info_and_the_sdk_retries_it(
    emulator: SentryEmulator, tmp_path
) -> None:
    forwarder, ids = start(emulator, tmp_path, grpc_max_concurrent_requests=1, retry_after=1.0)
    emulator.faults.stall(ids[SLOW])
    async with (
        forwarder,
        grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}", options=OWN_CONNECTION) as holding,
        grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}", options=OWN_CONNECTION) as other,
    ):
        slow = asyncio.create_task(export(holding, SLOW, deadline=60))
        await wait_until(lambda: held(forwarder) == 1, what="the one call allowed in progress, held by pacing")

        # A raw grpcio client: the refusal says when to come back, in both places OTLP clients look.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(other, FAST, deadline=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--grpc-max-concurrent-requests" in (caught.value.details() or "")
        assert 1.0 <= retry_delay(caught.value) <= 1.5  # --retry-after, plus up to 50 % jitter
        trailers: Any = caught.value.trailing_metadata()
        info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert 1.0 <= info.retry_delay.seconds + info.retry_delay.nanos / 1e9 <= 1.5
        assert refused(forwarder) == 1
        received = metric_value(forwarder, "sentryroute_received_items_total", {"signal": "traces"})
        assert received == SPANS, "the refused call's message was never taken in"

        # The OpenTelemetry SDK's exporter: refused while the slow call is in progress, then retried once it
        # is answered, and delivered.
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{forwarder.grpc_port}", insecure=True, timeout=30)
        spans = sdk_spans(FAST, 5)
        exported = asyncio.create_task(asyncio.to_thread(exporter.export, spans))
        await wait_until(lambda: refused(forwarder) == 2, what="the SDK's first attempt refused")
        emulator.faults.unstall(ids[SLOW])  # the held answer goes, and with it the call in progress
        await slow
        assert await exported == SpanExportResult.SUCCESS
        exporter.shutdown()
        await wait_until(lambda: emulator.received.span_count(ids[FAST]) == 5, what="the SDK's spans delivered")


async def test_a_call_whose_message_never_comes_gives_its_place_back_after_the_read_timeout(
    emulator: SentryEmulator, tmp_path
) -> None:
    """A client that opens calls and never sends their message (a pod in the cluster, or a stuck client) must
    not hold `--grpc-max-concurrent-requests` closed: each call gets `--read-timeout` for its message, as an
    OTLP/HTTP body does, and is then ended, so that the bound opens again for everyone else."""
    forwarder, ids = start(emulator, tmp_path, grpc_max_concurrent_requests=2, read_timeout=0.5)
    never = asyncio.Event()

    async def nothing() -> Any:  # the request stream of a client that never sends its message
        await never.wait()
        yield b""  # pragma: no cover

    async with (
        forwarder,
        grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}", options=OWN_CONNECTION) as stuck,
        grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}", options=OWN_CONNECTION) as other,
    ):
        method = stuck.stream_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        calls = [method(nothing()) for _ in range(2)]  # headers only: no deadline, no message
        for call in calls:  # cancelled after --read-timeout (OTLP clients retry CANCELLED)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.CANCELLED, caught.value
        assert metric_value(forwarder, "sentryroute_rejected_requests_total", {"code": "CANCELLED"}) == 2

        async def admitted() -> bool:
            """The later call, retried while refused (as OTLP clients retry with the RetryInfo sent): a stuck
            call's thread gives its place back just after its client is told CANCELLED, not before."""
            try:
                await export(other, FAST, deadline=10)
            except grpc.aio.AioRpcError as refused:
                if refused.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                return False
            return True

        await wait_until(admitted, what="the bound open again: a later call admitted and answered")
        await wait_until(lambda: emulator.received.span_count(ids[FAST]) == SPANS, what="the later call's spans")
        never.set()

"""Fuzzing both receivers (hypothesis) while a well-formed client sends beside the fuzzer.

Every example sends one hostile request (malformed or mutated protobuf, corrupt spans under a valid resource,
invalid UTF-8, deep nesting, huge attributes, OTLP/JSON of any shape, gzip or deflate of any of those) over
HTTP or gRPC, then one well-formed request of another client. Invariants, checked on every example: no 5xx and
no INTERNAL/UNKNOWN gRPC status, every HTTP error is a google.rpc.Status, `/readyz` answers within 1 s; and at
the end every span of the well-formed client is at the Sentry emulator, which never received a batch it could
not decode.

The suite runs a small, derandomized set; `make fuzz` runs the long one (SENTRYROUTE_FUZZ=long).
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import itertools
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sentryroute_forwarder.app import Forwarder

from sentryroute.emulator import EmulatorConfig, SentryEmulator
from tests.forwarder import otlp_strategies
from tests.forwarder.support import (
    emulator_projects,
    emulator_table,
    local_settings,
    resource,
    varint,
    write_table,
)

LONG = os.environ.get("SENTRYROUTE_FUZZ") == "long"
settings.register_profile(
    "sentryroute-suite",
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "sentryroute-long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("sentryroute-long" if LONG else "sentryroute-suite")
LIMIT = 256 * 1024
TRACE_SERVICE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_ids = itertools.count(1)


@dataclass
class Running:
    """A forwarder and the emulator on an event loop in a thread, driven by plain blocking clients."""

    loop: asyncio.AbstractEventLoop
    forwarder: Forwarder
    emulator: SentryEmulator
    project_ids: dict[str, str]
    good_spans: list[str] = field(default_factory=list)
    channel: grpc.Channel | None = None

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def post(self, body: bytes, headers: dict[str, str], path: str = "/v1/traces") -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.forwarder.http_port, timeout=20)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()

    def export_grpc(self, body: bytes) -> grpc.StatusCode:
        assert self.channel is not None
        call = self.channel.unary_unary(TRACE_SERVICE, request_serializer=None, response_deserializer=None)
        try:
            call(body, timeout=20)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def ready_within(self, seconds: float) -> float:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.forwarder.admin_port, timeout=seconds)
        try:
            connection.request("GET", "/readyz")
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        return time.monotonic() - started

    def send_good(self) -> None:
        """The other client: a well-formed request for `orders`, every span id remembered."""
        spans = [
            Span(trace_id=b"\x05" * 16, span_id=next(_ids).to_bytes(8, "big"), name="good", end_time_unix_nano=1)
            for _ in range(3)
        ]
        self.good_spans.extend(span.span_id.hex() for span in spans)
        rs = ResourceSpans(resource=resource({"service.name": "orders"}), scope_spans=[ScopeSpans(spans=spans)])
        body = ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()
        status, _, _ = self.post(body, {"Content-Type": "application/x-protobuf"})
        assert status == 200


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-loop", daemon=True)
    thread.start()

    def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    emulator = SentryEmulator(EmulatorConfig())
    run(emulator.__aenter__())
    services = emulator_projects(emulator, {"orders": "orders", "checkout": "checkout"})
    routes = Path(tmp_path_factory.mktemp("fuzz")) / "routes.json"
    write_table(routes, emulator_table(emulator, services))
    settings_ = local_settings(routes, max_request_bytes=LIMIT, read_timeout=2.0, batch_timeout=0.05)

    async def start() -> Forwarder:
        forwarder = Forwarder(settings_)
        await forwarder.start()
        return forwarder

    forwarder = run(start())
    state = Running(loop, forwarder, emulator, {name: p.id for name, (p, _) in services.items()})
    state.channel = grpc.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}")
    try:
        yield state
        # Everything the well-formed client was answered 200 for arrives, and no batch was undecodable.
        deadline = time.monotonic() + 30
        orders = state.project_ids["orders"]
        while len(emulator.received.spans(orders)) < len(state.good_spans) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(s.span_id for s in emulator.received.spans(orders)) == sorted(state.good_spans)
        for project_id in state.project_ids.values():
            assert emulator.received.invalid(project_id) == 0
    finally:
        state.channel.close()
        run(forwarder.stop())
        run(emulator.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


# -- what the fuzzer sends -----------------------------------------------------------------------------------

texts = st.text(max_size=40)
any_values = otlp_strategies.any_values(texts, max_bytes=40, max_leaves=12)
spans = st.builds(
    lambda name, trace_id, span_id, attributes: Span(
        name=name, trace_id=trace_id, span_id=span_id, attributes=[KeyValue(key=k, value=v) for k, v in attributes]
    ),
    texts,
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=8, max_size=8),
    st.lists(st.tuples(texts, any_values), max_size=4),
)


@st.composite
def valid_requests(draw: st.DrawFn) -> bytes:
    resources = draw(st.lists(st.lists(spans, min_size=1, max_size=4), min_size=1, max_size=3))
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource({"service.name": draw(st.sampled_from(["checkout", "nobody", "orders-evil"]))}),
                scope_spans=[ScopeSpans(spans=group)],
            )
            for group in resources
        ]
    )
    return request.SerializeToString()


@st.composite
def mutated(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    """Byte-level damage that keeps much of the structure: flips, truncation, insertions, deletions."""
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length"]))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at] = draw(st.sampled_from([0x7F, 0xFF, 0x80, 0x00]))
    return bytes(data)


def corrupt_span_under_valid_resource(damage: bytes) -> bytes:
    """A valid `checkout` resource whose one span's bytes are `damage` (framing around them intact)."""
    scope = b"\x12" + varint(len(damage)) + damage
    record = resource({"service.name": "checkout"}).SerializeToString()
    body = b"\x0a" + varint(len(record)) + record + b"\x12" + varint(len(scope)) + scope
    return b"\x0a" + varint(len(body)) + body


def deep(levels: int) -> bytes:
    """A span attribute nested `levels` arrays deep (past 47, past the decoders' 100-level limit)."""
    value = AnyValue(string_value="x").SerializeToString()
    for _ in range(levels):
        value = b"\x2a" + varint(len(b"\x0a" + varint(len(value)) + value)) + b"\x0a" + varint(len(value)) + value
    attribute = b"\x0a\x01k\x12" + varint(len(value)) + value
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).SerializeToString() + b"\x4a" + varint(len(attribute))
    return corrupt_span_under_valid_resource(span + attribute)


hostile_protobuf = st.one_of(
    st.binary(max_size=2048),
    mutated(valid_requests()),
    st.binary(min_size=1, max_size=200).map(corrupt_span_under_valid_resource),
    mutated(st.builds(lambda s: s.SerializeToString(), spans)).map(corrupt_span_under_valid_resource),
    st.integers(20, 80).map(deep),
    st.builds(
        lambda n: corrupt_span_under_valid_resource(Span(name="a" * n).SerializeToString()), st.integers(0, LIMIT)
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
otlp_json_keys = st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "attributes", "name"])
hostile_json = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(otlp_json_keys, json_values, max_size=4).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=512),
)
encodings = st.sampled_from(["", "gzip", "deflate"])


def encode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, mtime=0)
    if encoding == "deflate":
        return zlib.compress(body)
    return body


def check_http_answer(status: int, content_type: str, body: bytes) -> None:
    assert status < 500, f"a 5xx: {status} {body[:200]!r}"
    assert status in (200, 400, 413, 415, 429), status
    if status != 200:
        if content_type == "application/json":
            document = json.loads(body)
            assert "message" in document
        else:
            assert content_type == "application/x-protobuf"
            status_pb2.Status.FromString(body)


def after_each(running: Running) -> None:
    running.send_good()
    assert running.ready_within(1.0) < 1.0


# -- the fuzz tests ----------------------------------------------------------------------------------------------


@settings(PROFILE)
@given(body=hostile_protobuf, encoding=encodings)
def test_http_protobuf_fuzz(running: Running, body: bytes, encoding: str) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if encoding:
        headers["Content-Encoding"] = encoding
    check_http_answer(*running.post(encode(body, encoding), headers))
    after_each(running)


@settings(PROFILE)
@given(body=hostile_json, encoding=encodings)
def test_http_json_fuzz(running: Running, body: bytes, encoding: str) -> None:
    headers = {"Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    check_http_answer(*running.post(encode(body, encoding), headers))
    after_each(running)


@settings(PROFILE)
@given(body=hostile_protobuf)
def test_grpc_fuzz(running: Running, body: bytes) -> None:
    code = running.export_grpc(body)
    allowed = (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert code in allowed, code
    after_each(running)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("gzip-bomb", lambda: (gzip.compress(b"\x00" * (64 * LIMIT)), "gzip")),
        ("deflate-bomb", lambda: (zlib.compress(b"\x00" * (64 * LIMIT), 9), "deflate")),
        ("many-gzip-members", lambda: (gzip.compress(b"", mtime=0) * 5000, "gzip")),
        ("bomb-in-members", lambda: (gzip.compress(b"\x0a\x00") * 60 + gzip.compress(b"\x00" * LIMIT * 4), "gzip")),
    ],
)  # fmt: skip
def test_compression_attacks(running: Running, name: str, make: Callable[[], tuple[bytes, str]]) -> None:
    body, encoding = make()
    status, content_type, answer = running.post(
        body, {"Content-Type": "application/x-protobuf", "Content-Encoding": encoding}
    )
    check_http_answer(status, content_type, answer)
    assert status in (400, 413)
    after_each(running)


def test_slow_senders_and_idle_connections_do_not_stall_others(running: Running) -> None:
    async def hold_connections() -> list[asyncio.StreamWriter]:
        writers = []
        for i in range(200):
            _, writer = await asyncio.open_connection("127.0.0.1", running.forwarder.http_port)
            if i % 2:  # half idle, half trickling a request that never completes
                writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
            writers.append(writer)
        return writers

    writers = running.run(hold_connections())
    try:
        for _ in range(5):
            after_each(running)
    finally:

        async def close() -> None:
            for writer in writers:
                writer.close()

        running.run(close())

"""Forwarder throughput benchmark: OTLP/HTTP load → forwarder (own process) → a counting sink.

    .venv/bin/python bench/forwarder_bench.py --requests 2000 --connections 16

The forwarder runs as `sentryroute forwarder` in a child process pinned to CPU 0 (when there are two or
more CPUs); the load generator and the sink share this process on the other CPU. The sink counts spans
by walking the wire format (the forwarder's own reader), so it is far from being the bottleneck
(perf-reference.md). Each request is 10 resources (`service.name` svc-0..svc-9) x 50 spans x 11
attributes, about 240 KB, routed to 10 projects. Reported: spans/s delivered at the sink, forwarder CPU
µs per span (from /proc/PID/stat), request latency p50/p99, forwarder peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from isal import isal_zlib
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sentryroute_forwarder.route.wire import parse_records

from sentryroute.routes import RoutesTable

SERVICES = 10
SPANS_PER_RESOURCE = 50
SPANS_PER_REQUEST = SERVICES * SPANS_PER_RESOURCE
_LISTENING_RE = re.compile(r"OTLP/HTTP \S+:(\d+)")


def build_request() -> bytes:
    """One request of the reference workload (perf-reference.md)."""
    request = ExportTraceServiceRequest()
    for s in range(SERVICES):
        attributes = {"service.name": f"svc-{s}", "k8s.namespace.name": "bench", "host.name": f"node-{s}"}
        resource_spans = ResourceSpans(
            resource=Resource(
                attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()]
            )
        )
        scope = ScopeSpans(scope=InstrumentationScope(name="bench", version="1.0"))
        for i in range(SPANS_PER_RESOURCE):
            scope.spans.append(
                Span(
                    trace_id=os.urandom(16),
                    span_id=os.urandom(8),
                    parent_span_id=os.urandom(8),
                    name=f"GET /api/items/{i}",
                    kind=Span.SPAN_KIND_SERVER,
                    start_time_unix_nano=1_700_000_000_000_000_000 + i,
                    end_time_unix_nano=1_700_000_000_050_000_000 + i,
                    attributes=[
                        KeyValue(key=f"attribute.{a}", value=AnyValue(string_value=f"value-{a}-{i:04d}-abcdef"))
                        for a in range(11)
                    ],
                )
            )
        resource_spans.scope_spans.append(scope)
        request.resource_spans.append(resource_spans)
    return request.SerializeToString()


def build_table(sink_port: int) -> RoutesTable:
    base = f"http://127.0.0.1:{sink_port}"
    return RoutesTable.model_validate(
        {
            "version": 1,
            "routes": [
                {"attribute": "service.name", "value": f"svc-{s}", "project": f"bench/p{s}"} for s in range(SERVICES)
            ],
            "projects": {
                f"bench/p{s}": {
                    "id": str(s + 1),
                    "tracesUrl": f"{base}/api/{s + 1}/integration/otlp/v1/traces/",
                    "logsUrl": f"{base}/api/{s + 1}/integration/otlp/v1/logs/",
                    "publicKey": f"{s + 1:032x}",
                }
                for s in range(SERVICES)
            },
        }
    ).with_revision()


class CountingSink:
    """Accepts export requests and counts spans by walking the wire format."""

    def __init__(self) -> None:
        self.spans = 0
        self.requests = 0
        self.target = 0
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = isal_zlib.decompress(body, wbits=31)
        self.spans += sum(record.items for record in parse_records(body, keys=()))
        self.requests += 1
        if self.target and self.spans >= self.target:
            self.done.set()
        return web.Response(status=200)

    def expect(self, spans: int) -> None:
        """Count from zero; `done` is set once `spans` have arrived."""
        self.spans, self.requests, self.target = 0, 0, spans
        self.done.clear()

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{project}/integration/otlp/v1/{signal}/", self.handle)
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)  # inflated with ISA-L above
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, int(runner.addresses[0][1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_forwarder(routes: Path, *, pin: bool) -> tuple[subprocess.Popen[str], int]:
    command = [
        sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes),
        "--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0",
    ]  # fmt: skip
    if pin:
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        match = _LISTENING_RE.search(line)
        if match:
            return process, int(match[1])
    raise RuntimeError(f"the forwarder exited with code {process.wait()} before listening")


async def send(port: int, body: bytes, count: int, latencies: list[float]) -> None:
    """POST `body` `count` times on one keep-alive connection.

    A raw HTTP/1.1 client: aiohttp's client costs more CPU per request than the forwarder does, and the
    load generator must not be the bottleneck.
    """
    request = (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"forwarder answered {status}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def run(requests: int, connections: int) -> None:
    pin = (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {1})
    sink = CountingSink()
    sink_runner, sink_port = await sink.start()
    body = build_request()
    with tempfile.TemporaryDirectory() as tmp:
        routes = Path(tmp) / "routes.json"
        routes.write_text(build_table(sink_port).to_json())
        process, port = start_forwarder(routes, pin=pin)
        try:
            sink.expect(20 * SPANS_PER_REQUEST)
            await send(port, body, 20, [])  # warm-up: code paths, upstream connections
            await asyncio.wait_for(sink.done.wait(), timeout=60)
            sink.expect(requests * SPANS_PER_REQUEST)
            latencies: list[float] = []
            cpu_before, started = cpu_seconds(process.pid), time.perf_counter()
            per_connection = [requests // connections + (i < requests % connections) for i in range(connections)]
            await asyncio.gather(*(send(port, body, n, latencies) for n in per_connection))
            await asyncio.wait_for(sink.done.wait(), timeout=120)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(process.pid) - cpu_before
            latencies.sort()
            size = f"{len(body) / 1024:.0f} KB ({SPANS_PER_REQUEST} spans)"
            print(f"requests: {requests} x {size}, {connections} connections")
            print(f"delivered: {sink.spans} spans in {sink.requests} upstream requests, {elapsed:.2f}s")
            print(f"throughput: {sink.spans / elapsed / 1000:.0f} k spans/s")
            print(f"forwarder CPU: {cpu * 1e6 / sink.spans:.2f} µs/span ({cpu:.2f}s)")
            print(
                f"latency: p50 {statistics.median(latencies) * 1000:.1f} ms, "
                f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms"
            )
            print(f"forwarder peak RSS: {peak_rss_mb(process.pid):.0f} MB")
        finally:
            process.terminate()
            process.wait(timeout=30)
            await sink_runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.connections))


if __name__ == "__main__":
    main()

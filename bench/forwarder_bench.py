"""Forwarder benchmark, side by side with rotel: OTLP/HTTP load → system under test → a counting sink.

    bash scripts/install-rotel.sh
    .venv/bin/python bench/forwarder_bench.py --system both --rounds 3

Systems: `sentryroute` (`sentryroute forwarder`: splits each request into 10 projects, gzips upstream with
ISA-L level 1) and `rotel` (the Rust collector of docs/performance-facts.md: decode, re-batch, gzip, one upstream
stream; its own defaults: batches of 8192 spans / 200 ms, internal telemetry off). `--system both` interleaves
rounds (sentryroute, rotel, sentryroute, ...) under the same load; every round starts a fresh process of the
system under test. With two or more CPUs that process runs alone on CPU 0 and this process (load generator
and sink) on CPU 1. The sink counts spans by walking the wire format (the forwarder's own reader), so it is
far from being the bottleneck (docs/performance-facts.md); the harness and foreign CPU-0 load are reported to show it.

Each request is 10 resources (`service.name` svc-0..svc-9) x 50 spans x 11 attributes, about 240 KB. A round
sends 20 warm-up requests and waits until the sink has them, then sends `--requests` over `--connections`
keep-alive connections and stops the clock once the sink has every span (the drain, identical for both,
includes at most one 200 ms batch timeout). Reported per system, median [range] over rounds: spans/s
delivered at the sink, CPU µs per span of the system under test (utime+stime of all its threads, from
/proc/PID/stat), request latency p50/p99, peak RSS (VmHWM); and the sentryroute/rotel ratios of spans/s and
of spans per CPU-second ("per core"), one ratio per pair of adjacent rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
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
WARM_UP_REQUESTS = 20
SYSTEMS = ("sentryroute", "rotel")
DEFAULT_ROTEL = Path(__file__).resolve().parents[1] / ".tools" / "rotel" / "rotel-agent"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def build_request() -> bytes:
    """One request of the reference workload (docs/performance-facts.md)."""
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
    """Accepts export requests (Sentry's per-project paths and the plain OTLP `/v1/traces`) and counts spans by
    walking the wire format."""

    def __init__(self) -> None:
        self.spans = 0
        self.requests = 0
        self.gzipped = 0  # requests with Content-Encoding: gzip
        self.wire_bytes = 0  # request bodies as received
        self.target = 0
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.wire_bytes += len(body)
        if request.headers.get("Content-Encoding") == "gzip":
            self.gzipped += 1
            body = isal_zlib.decompress(body, wbits=31)
        self.spans += sum(record.items for record in parse_records(body, keys=()))
        self.requests += 1
        if self.target and self.spans >= self.target:
            self.done.set()
        return web.Response(status=200, content_type="application/x-protobuf")  # an empty Export*Response

    def expect(self, spans: int) -> None:
        """Count from zero; `done` is set once `spans` have arrived."""
        self.spans, self.requests, self.gzipped, self.wire_bytes, self.target = 0, 0, 0, 0, spans
        self.done.clear()

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{project}/integration/otlp/v1/{signal}/", self.handle)  # sentryroute
        app.router.add_post("/v1/{signal}", self.handle)  # rotel's OTLP/HTTP exporter
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)  # inflated with ISA-L above
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, int(runner.addresses[0][1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime of all threads


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu0_busy_seconds() -> float:
    """Time CPU 0 was not idle (including time stolen by the hypervisor), from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu0 "):
            ticks = [int(field) for field in line.split()[1:9]]  # user nice system idle iowait irq softirq steal
            return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS
    return float("nan")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Clocks read at the start and the end of a measured window."""

    wall: float
    system_cpu: float  # the system under test
    harness_cpu: float  # this process: load generator and sink
    cpu0_busy: float

    @classmethod
    def take(cls, pid: int) -> Snapshot:
        return cls(time.perf_counter(), cpu_seconds(pid), time.process_time(), cpu0_busy_seconds())


@dataclass(frozen=True, slots=True)
class RoundResult:
    """One measured round of one system."""

    system: str
    spans: int  # delivered at the sink
    upstream_requests: int
    upstream_gzipped: int  # upstream requests with a gzip body
    upstream_mb: float  # upstream bodies as sent (compressed)
    seconds: float
    cpu_seconds: float  # of the system under test
    latency_p50_ms: float
    latency_p99_ms: float
    peak_rss_mb: float
    harness_cores: float  # CPU of the load generator + sink, in cores: near 1.0 would make it the bottleneck
    cpu0_others_cores: float  # CPU 0 busy with anything but the system under test: noise

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.seconds

    @property
    def cpu_us_per_span(self) -> float:
        return self.cpu_seconds * 1e6 / self.spans

    @property
    def spans_per_cpu_second(self) -> float:
        return self.spans / self.cpu_seconds

    @property
    def system_cores(self) -> float:
        """CPU of the system under test, in cores: near 1.0 means it, not the harness, sets the pace."""
        return self.cpu_seconds / self.seconds

    def to_json(self) -> dict[str, object]:
        derived = ("spans_per_second", "cpu_us_per_span", "spans_per_cpu_second", "system_cores")
        return {**asdict(self), **{name: getattr(self, name) for name in derived}}

    def summary_line(self) -> str:
        return (
            f"{self.system}: {self.spans} spans in {self.upstream_requests} upstream requests"
            f" ({self.upstream_gzipped} gzipped, {self.upstream_mb:.1f} MB), {self.seconds:.2f}s"
            f" = {self.spans_per_second / 1000:.0f} k spans/s, {self.cpu_us_per_span:.2f} µs/span"
            f" ({self.system_cores:.2f} cores),"
            f" p50 {self.latency_p50_ms:.1f} ms, p99 {self.latency_p99_ms:.1f} ms, RSS {self.peak_rss_mb:.0f} MB,"
            f" harness {self.harness_cores:.2f} cores, CPU 0 others {self.cpu0_others_cores:.2f} cores"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def system_command(system: str, *, port: int, sink_port: int, workdir: Path, rotel: Path) -> list[str]:
    """The command line of the system under test, listening for OTLP/HTTP on `port`."""
    if system == "sentryroute":
        routes = workdir / "routes.json"
        routes.write_text(build_table(sink_port).to_json())
        return [
            sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes),
            "--otlp-http", f"127.0.0.1:{port}", "--otlp-grpc", f"127.0.0.1:{free_port()}",
            "--admin", f"127.0.0.1:{free_port()}",
        ]  # fmt: skip
    return [
        str(rotel), "start",
        "--otlp-http-endpoint", f"127.0.0.1:{port}", "--otlp-grpc-endpoint", f"127.0.0.1:{free_port()}",
        "--exporter", "otlp", "--otlp-exporter-endpoint", f"http://127.0.0.1:{sink_port}",
        "--otlp-exporter-protocol", "http",
        "--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "rotel.log"),
    ]  # fmt: skip


def launch(command: list[str], *, pin: bool, log: Path) -> subprocess.Popen[bytes]:
    """Start the system under test, alone on CPU 0 when `pin`; its output goes to `log`."""
    if pin:
        command = ["taskset", "-c", "0", *command]
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def wait_listening(process: subprocess.Popen[bytes], *, port: int, log: Path) -> None:
    """Poll until `port` accepts connections (both systems load their configuration before listening)."""
    async with asyncio.timeout(30):
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the system under test exited with code {process.returncode}:\n{log_tail(log)}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


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


@dataclass(frozen=True, slots=True)
class Load:
    """What every round sends, whatever the system."""

    body: bytes
    requests: int
    connections: int


async def measure_round(
    system: str, *, load: Load, sink: CountingSink, sink_port: int, workdir: Path, rotel: Path, pin: bool
) -> RoundResult:
    """Start `system`, warm it up, send the load, wait until the sink has every span, stop `system`."""
    port = free_port()
    log = workdir / f"{system}.out"
    process = launch(
        system_command(system, port=port, sink_port=sink_port, workdir=workdir, rotel=rotel), pin=pin, log=log
    )
    try:
        await wait_listening(process, port=port, log=log)
        sink.expect(WARM_UP_REQUESTS * SPANS_PER_REQUEST)
        await send(port, load.body, WARM_UP_REQUESTS, [])  # code paths, upstream connections
        await asyncio.wait_for(sink.done.wait(), timeout=60)

        sink.expect(load.requests * SPANS_PER_REQUEST)
        latencies: list[float] = []
        share, extra = divmod(load.requests, load.connections)
        per_connection = [share + (i < extra) for i in range(load.connections)]
        before = Snapshot.take(process.pid)
        await asyncio.gather(*(send(port, load.body, n, latencies) for n in per_connection))
        try:
            await asyncio.wait_for(sink.done.wait(), timeout=120)
        except TimeoutError:
            raise RuntimeError(
                f"{system}: the sink has {sink.spans} of {sink.target} spans after 120s:\n{log_tail(log)}"
            ) from None
        after = Snapshot.take(process.pid)
        seconds = after.wall - before.wall
        system_cpu = after.system_cpu - before.system_cpu
        latencies.sort()
        return RoundResult(
            system=system,
            spans=sink.spans,
            upstream_requests=sink.requests,
            upstream_gzipped=sink.gzipped,
            upstream_mb=sink.wire_bytes / 1e6,
            seconds=seconds,
            cpu_seconds=system_cpu,
            latency_p50_ms=statistics.median(latencies) * 1000,
            latency_p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
            peak_rss_mb=peak_rss_mb(process.pid),
            harness_cores=(after.harness_cpu - before.harness_cpu) / seconds,
            cpu0_others_cores=(after.cpu0_busy - before.cpu0_busy - system_cpu) / seconds,
        )
    finally:
        stop(process)


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """`median [min..max]`."""
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}..{fmt.format(max(values))}]"


_COLUMNS: tuple[tuple[str, Callable[[RoundResult], float], str], ...] = (
    ("k spans/s", lambda r: r.spans_per_second / 1000, "{:.0f}"),
    ("CPU µs/span", lambda r: r.cpu_us_per_span, "{:.2f}"),
    ("k spans/CPU-s", lambda r: r.spans_per_cpu_second / 1000, "{:.0f}"),
    ("p50 ms", lambda r: r.latency_p50_ms, "{:.1f}"),
    ("p99 ms", lambda r: r.latency_p99_ms, "{:.1f}"),
    ("peak RSS MB", lambda r: r.peak_rss_mb, "{:.0f}"),
    ("system cores", lambda r: r.system_cores, "{:.2f}"),
    ("harness cores", lambda r: r.harness_cores, "{:.2f}"),
    ("CPU 0 others", lambda r: r.cpu0_others_cores, "{:.2f}"),
)


def summarize(results: list[RoundResult]) -> dict[str, object]:
    """Print a Markdown table (median [range] per system) and the sentryroute/rotel ratios; return both."""
    by_system = {s: [r for r in results if r.system == s] for s in SYSTEMS if any(r.system == s for r in results)}
    print("\n| system | " + " | ".join(name for name, _, _ in _COLUMNS) + " |")
    print("| --- " * (len(_COLUMNS) + 1) + "|")
    summary: dict[str, object] = {}
    for system, rounds in by_system.items():
        print(f"| {system} | " + " | ".join(spread([get(r) for r in rounds], fmt) for _, get, fmt in _COLUMNS) + " |")
        summary[system] = {
            name: {"median": statistics.median(v), "min": min(v), "max": max(v)}
            for name, get, _ in _COLUMNS
            for v in [[get(r) for r in rounds]]
        }
    if len(by_system) == 2:
        pairs = list(zip(by_system["sentryroute"], by_system["rotel"], strict=True))
        ratios = {
            "spans/s": [a.spans_per_second / b.spans_per_second for a, b in pairs],
            "spans per CPU-second": [a.spans_per_cpu_second / b.spans_per_cpu_second for a, b in pairs],
        }
        print("\nsentryroute / rotel, one ratio per pair of adjacent rounds, median [range]:")
        for name, values in ratios.items():
            print(f"  {name}: {spread(values)}  ({', '.join(f'{v:.2f}' for v in values)})")
        summary["ratio_sentryroute_to_rotel"] = {
            name: {"median": statistics.median(v), "min": min(v), "max": max(v), "pairs": v}
            for name, v in ratios.items()
        }
    return summary


async def run(args: argparse.Namespace) -> dict[str, object]:
    systems = SYSTEMS if args.system == "both" else (args.system,)
    pin = (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {1})
    load = Load(body=build_request(), requests=args.requests, connections=args.connections)
    print(
        f"load: {args.requests} requests x {len(load.body) / 1024:.0f} KB ({SPANS_PER_REQUEST} spans) over "
        f"{args.connections} connections; {args.rounds} rounds of {', '.join(systems)}"
        + ("; system under test on CPU 0, load generator + sink on CPU 1" if pin else "; not pinned (one CPU)")
    )
    sink = CountingSink()
    sink_runner, sink_port = await sink.start()
    results: list[RoundResult] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for number in range(1, args.rounds + 1):
                for system in systems:
                    result = await measure_round(
                        system, load=load, sink=sink, sink_port=sink_port, workdir=Path(tmp), rotel=args.rotel, pin=pin
                    )
                    print(f"round {number}/{args.rounds} {result.summary_line()}", flush=True)
                    results.append(result)
    finally:
        await sink_runner.cleanup()
    summary = summarize(results)
    return {
        "load": {
            "requests": args.requests,
            "connections": args.connections,
            "request_bytes": len(load.body),
            "spans_per_request": SPANS_PER_REQUEST,
            "pinned": pin,
        },
        "rounds": [r.to_json() for r in results],
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=(*SYSTEMS, "both"), default="both", help="system(s) under test")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per system (interleaved for both)")
    parser.add_argument("--requests", type=int, default=6000, help="requests per round (500 spans each)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rotel", type=Path, default=DEFAULT_ROTEL, help="rotel-agent binary")
    parser.add_argument("--json", type=Path, help="also write rounds and summary to this file")
    args = parser.parse_args()
    if args.rounds < 1 or args.requests < args.connections:
        parser.error("--rounds must be at least 1 and --requests at least --connections")
    if args.system != "sentryroute" and not os.access(args.rotel, os.X_OK):
        parser.error(f"no rotel-agent at {args.rotel}: run `bash scripts/install-rotel.sh` first")
    report = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

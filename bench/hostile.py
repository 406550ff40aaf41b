"""The hostile-input table of docs/reliability.md: each attack against a real forwarder process, while a
well-formed client sends beside it.

    .venv/bin/python bench/hostile.py            # or: make hostile (writes the table into docs/reliability.md)

One forwarder process (`--max-bytes 32MiB`, `--read-timeout 5s`, other flags at their defaults) sends to the
Sentry emulator (in this process). For every attack: the answers the attacker got; `/readyz` probed every
100 ms (p99 and worst latency, a timeout counting as 5 s); the forwarder's RSS sampled every 50 ms (peak); and
the other client — 5 spans every 100 ms for another project, over HTTP — whose spans are counted at the
emulator after the attack (delivered / answered 200).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' hand-made protobuf builders (tests/forwarder/support.py)

from sentryroute.demo.stack import free_ports  # noqa: E402
from sentryroute.emulator import EmulatorConfig, SentryEmulator  # noqa: E402
from sentryroute.routes import ProjectEndpoint, RoutesTable  # noqa: E402
from tests.forwarder.support import field as field_bytes  # noqa: E402
from tests.forwarder.support import varint  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- hostile:start -->", "<!-- hostile:end -->"
MAX_BYTES_MIB = 32
MAX_BYTES = f"{MAX_BYTES_MIB}MiB"
#: docs/reliability.md's constant above --max-bytes for HTTP with the default flags (process, decode workers).
RSS_CONSTANT_MB = 170
READ_TIMEOUT = 5.0
ATTACK_SECONDS = 5.0
PROTOBUF = {"Content-Type": "application/x-protobuf"}
MIB = 1024 * 1024
_ids = itertools.count(1)


# -- request bodies ------------------------------------------------------------------------------------------


def resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def span(name: str = "op", **extra: object) -> Span:
    return Span(trace_id=b"\x01" * 16, span_id=next(_ids).to_bytes(8, "big"), name=name, **extra)  # type: ignore[arg-type]


def record(service: str, scope_body: bytes) -> bytes:
    """A ResourceSpans record (field 1 of the request) with `scope_body` as its one ScopeSpans."""
    body = field_bytes(1, resource(service).SerializeToString()) + field_bytes(2, scope_body)
    return field_bytes(1, body)


def poisoned() -> bytes:
    """The issue's reproduction: ~100 bytes, `checkout`, one valid span and one whose trace_id claims 255 bytes."""
    bad = b"\x0a" + varint(255) + b"\x00" * 16
    return record("checkout", ScopeSpans(spans=[span()]).SerializeToString() + field_bytes(2, bad))


def deep_any_value(levels: int = 120) -> bytes:
    value = AnyValue(string_value="x").SerializeToString()
    for _ in range(levels):
        value = field_bytes(5, field_bytes(1, value))  # AnyValue.array_value → ArrayValue.values
    attribute = field_bytes(1, b"k") + field_bytes(2, value)
    return record("checkout", field_bytes(2, span().SerializeToString() + field_bytes(9, attribute)))


def bad_utf8() -> bytes:
    data = span("\u00e9").SerializeToString().replace("\u00e9".encode(), b"\xff\xfe")
    return record("checkout", field_bytes(2, data))


def good_request(service: str, spans: list[Span]) -> bytes:
    rs = ResourceSpans(resource=resource(service), scope_spans=[ScopeSpans(spans=spans)])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def big_request(nbytes: int) -> bytes:
    """About `nbytes` of one unrouted resource (dropped once accepted: the point is the body's memory)."""
    filler = "x" * (nbytes - 200)
    big = span(attributes=[KeyValue(key="blob", value=AnyValue(string_value=filler))])
    return good_request("nobody", [big])


def big_json(nbytes: int) -> bytes:
    """An OTLP/JSON body of about `nbytes`: many small spans (the expensive shape to parse), ids in hex."""
    document = json_format.MessageToDict(span(attributes=[KeyValue(key="a", value=AnyValue(int_value=1))]))
    document.update(traceId="01" * 16, spanId="02" * 8)
    one = json.dumps(document)
    count = max(1, nbytes // (len(one) + 2))
    spans = ",".join([one] * count)
    return ('{"resourceSpans":[{"resource":' + json.dumps(json_format.MessageToDict(resource("nobody")))
            + ',"scopeSpans":[{"spans":[' + spans + "]}]}]}").encode()  # fmt: skip


# -- the forwarder process and the monitors ------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


@dataclass
class Target:
    process: subprocess.Popen[bytes]
    http: int
    grpc: int
    admin: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}/v1/traces"


@dataclass
class Watch:
    """What the monitors saw during one attack."""

    readyz: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    good_sent: list[str] = field(default_factory=list)  # span ids answered 200
    good_refused: int = 0


async def monitor(target: Target, session: aiohttp.ClientSession, watch: Watch, stop: asyncio.Event) -> None:
    async def probe() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(
                    f"http://127.0.0.1:{target.admin}/readyz", timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    await resp.read()
                watch.readyz.append(time.monotonic() - started)
            except (TimeoutError, aiohttp.ClientError):
                watch.readyz.append(5.0)
            await asyncio.sleep(0.1)

    async def sample() -> None:
        while not stop.is_set():
            watch.rss.append(rss_mb(target.process.pid))
            await asyncio.sleep(0.05)

    async def other_client() -> None:
        async with aiohttp.ClientSession() as own:  # its own connection pool, like another pod
            while not stop.is_set():
                spans = [span("good") for _ in range(5)]
                try:
                    async with own.post(
                        target.url, data=good_request("orders", spans), headers=PROTOBUF,
                        timeout=aiohttp.ClientTimeout(total=10),
                    ) as resp:  # fmt: skip
                        await resp.read()
                        if resp.status == 200:
                            watch.good_sent.extend(s.span_id.hex() for s in spans)
                        else:
                            watch.good_refused += 1
                except (TimeoutError, aiohttp.ClientError):
                    watch.good_refused += 1
                await asyncio.sleep(0.1)

    await asyncio.gather(probe(), sample(), other_client())


# -- attacks: each returns what the attacker was answered ----------------------------------------------------


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> str:
    try:
        async with session.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as resp:
            answer = await resp.read()
            if resp.status == 200 and b"dropped" in answer:
                return "200 partial_success"
            return str(resp.status)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return type(exc).__name__


async def repeat(seconds: float, interval: float, send: Callable[[], Awaitable[str]]) -> Counter[str]:
    answers: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers[await send()] += 1
        await asyncio.sleep(interval)
    return answers


async def raw(port: int, data: bytes, *, trickle: float = 0.0, hold: float = 0.0) -> str:
    """Send `data` on a plain socket (a byte every `trickle` s), keep it open `hold` s; the answer's status."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return type(exc).__name__
    try:
        if trickle:
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(trickle)
        else:
            writer.write(data)
            await writer.drain()
        if hold:
            await asyncio.sleep(hold)
    except OSError:
        pass  # the server answered and closed while this was still sending: read the answer
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=READ_TIMEOUT * 3)
        return line.split()[1].decode() if line.startswith(b"HTTP/") else "closed"
    except TimeoutError:
        return f"still open after {READ_TIMEOUT * 3:g} s"
    except (OSError, IndexError):
        return "closed"
    finally:
        writer.close()


def head(content_length: int, *extra: str) -> bytes:
    lines = ["POST /v1/traces HTTP/1.1", "Host: x", "Content-Type: application/x-protobuf", *extra]
    return ("\r\n".join([*lines, f"Content-Length: {content_length}"]) + "\r\n\r\n").encode()


async def gather_answers(*coroutines: Awaitable[str]) -> Counter[str]:
    return Counter(await asyncio.gather(*coroutines))


def attacks(target: Target, session: aiohttp.ClientSession) -> dict[str, Callable[[], Awaitable[Counter[str]]]]:
    url = target.url

    def send(body: bytes, headers: dict[str, str] = PROTOBUF) -> Callable[[], Awaitable[str]]:
        return lambda: post(session, url, body, headers)

    async def grpc_poison() -> Counter[str]:
        answers: Counter[str] = Counter()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc}") as channel:
            call = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,
                response_deserializer=None,
            )
            deadline = time.monotonic() + ATTACK_SECONDS
            while time.monotonic() < deadline:
                try:
                    await call(poisoned(), timeout=10)
                    answers["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    answers[exc.code().name] += 1
                await asyncio.sleep(0.05)
        return answers

    members = gzip.compress(b"", mtime=0) * 300_000
    gzip_bomb = gzip.compress(b"\x00" * (256 * MIB), compresslevel=9)
    deflate_bomb = zlib.compress(b"\x00" * (256 * MIB), 9)
    upload = big_request(16 * MIB - 1024)
    json_body = big_json(4 * MIB - 1024)
    json_too_big = big_json(16 * MIB - 1024)
    mixed = record("orders", ScopeSpans(spans=[span()]).SerializeToString()) + bad_utf8()
    gz = {**PROTOBUF, "Content-Encoding": "gzip"}
    return {
        "corrupt span under a valid resource (the issue's 100-byte reproduction), 20 requests/s": lambda: repeat(
            ATTACK_SECONDS, 0.05, send(poisoned())
        ),
        "the same over gRPC, 20 requests/s": grpc_poison,
        "invalid UTF-8 in a span name, 20 requests/s": lambda: repeat(ATTACK_SECONDS, 0.05, send(bad_utf8())),
        "a 120-deep AnyValue in a span attribute, 20 requests/s": lambda: repeat(
            ATTACK_SECONDS, 0.05, send(deep_any_value())
        ),
        "a corrupt resource beside a valid one, 20 requests/s": lambda: repeat(ATTACK_SECONDS, 0.05, send(mixed)),
        "gzip of 300,000 empty members (6 MB)": lambda: gather_answers(post(session, url, members, gz)),
        "gzip bomb (256 MiB of zeros in 250 KB), 8 at once": lambda: gather_answers(
            *(post(session, url, gzip_bomb, gz) for _ in range(8))
        ),
        "deflate bomb (256 MiB of zeros), 8 at once": lambda: gather_answers(
            *(post(session, url, deflate_bomb, {**PROTOBUF, "Content-Encoding": "deflate"}) for _ in range(8))
        ),
        f"32 concurrent 16 MiB uploads (--max-bytes {MAX_BYTES})": lambda: gather_answers(
            *(post(session, url, upload, PROTOBUF) for _ in range(32))
        ),
        "4 MiB OTLP/JSON bodies (38,000 spans each), 16 at once": lambda: gather_answers(
            *(post(session, url, json_body, {"Content-Type": "application/json"}) for _ in range(16))
        ),
        "16 MiB OTLP/JSON bodies, 4 at once": lambda: gather_answers(
            *(post(session, url, json_too_big, {"Content-Type": "application/json"}) for _ in range(4))
        ),
        "lying Content-Length (declares 1 MB, sends 10 bytes), 100 connections": lambda: gather_answers(
            *(raw(target.http, head(MIB) + b"\x0a" * 10) for _ in range(100))
        ),
        "slow senders (a byte every 200 ms), 100 connections": lambda: gather_answers(
            *(raw(target.http, head(100) + b"\x00" * 100, trickle=0.2) for _ in range(100))
        ),
        "2,000 idle connections": lambda: gather_answers(*(raw(target.http, b"", hold=0) for _ in range(2000))),
        "duplicate Content-Length / Content-Length with chunked": lambda: gather_answers(
            raw(target.http, head(5, "Content-Length: 7") + b"x" * 7),
            raw(target.http, head(5, "Transfer-Encoding: chunked") + b"0\r\n\r\n"),
        ),
    }


# -- running it all ------------------------------------------------------------------------------------------


@dataclass
class Row:
    attack: str
    answers: dict[str, int]
    readyz_p99_ms: float
    readyz_max_ms: float
    peak_rss_mb: float
    delivered: int
    answered_200: int
    refused: int


async def start_forwarder(routes: Path, workdir: Path) -> Target:
    http, grpc_port, admin = free_ports(3)
    command = [
        str(Path(sys.executable).parent / "sentryroute"), "forwarder", "--routes", str(routes),
        "--otlp-http", f"127.0.0.1:{http}", "--otlp-grpc", f"127.0.0.1:{grpc_port}", "--admin", f"127.0.0.1:{admin}",
        "--max-bytes", MAX_BYTES, "--read-timeout", f"{READ_TIMEOUT:g}s", "--log-level", "error",
    ]  # fmt: skip
    log = (workdir / "forwarder.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220 - started once
    target = Target(process, http, grpc_port, admin)
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{admin}/readyz") as resp:
                    if resp.status == 200:
                        return target
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the forwarder did not become ready; see {workdir / 'forwarder.log'}")


def routes_table(emulator: SentryEmulator) -> RoutesTable:
    emulator.state.add_org("acme")
    emulator.state.add_team("acme", "backend")
    projects, routes = {}, []
    for service in ("orders", "checkout"):
        project = emulator.state.add_project("acme", "backend", service)
        key = emulator.state.add_key("acme", service, name="sentryroute")
        projects[f"acme/{service}"] = ProjectEndpoint(
            id=project.id,
            tracesUrl=emulator.otlp_url(project.id, "traces"),
            logsUrl=emulator.otlp_url(project.id, "logs"),
            publicKey=key.public,
        )
        routes.append({"attribute": "service.name", "value": service, "project": f"acme/{service}"})
    return RoutesTable.model_validate({"version": 1, "routes": routes, "projects": projects}).with_revision()


async def run(only: str | None) -> list[Row]:
    rows = []
    async with SentryEmulator(EmulatorConfig(body_limit=64 * MIB)) as emulator:
        orders = None
        with tempfile.TemporaryDirectory(prefix="sentryroute-hostile-") as tmp:
            workdir = Path(tmp)
            routes = workdir / "routes.json"
            table = routes_table(emulator)
            routes.write_text(table.to_json())
            orders = table.projects["acme/orders"].id
            target = await start_forwarder(routes, workdir)
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                    for name, attack in attacks(target, session).items():
                        if only and only not in name:
                            continue
                        rows.append(await measure(name, attack, target, session, emulator, orders))
                        print(line(rows[-1]), flush=True)
            finally:
                target.process.terminate()
                target.process.wait(timeout=30)
    return rows


async def measure(
    name: str,
    attack: Callable[[], Awaitable[Counter[str]]],
    target: Target,
    session: aiohttp.ClientSession,
    emulator: SentryEmulator,
    orders: str,
) -> Row:
    watch, stop = Watch(), asyncio.Event()
    before = len(emulator.received.spans(orders))
    watcher = asyncio.create_task(monitor(target, session, watch, stop))
    await asyncio.sleep(0.3)  # the other client is sending before the attack starts
    answers = await attack()
    await asyncio.sleep(0.3)
    stop.set()
    await watcher
    deadline = time.monotonic() + 30
    while len(emulator.received.spans(orders)) - before < len(watch.good_sent) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # polling the emulator's record: it has no event to wait on
    received = {s.span_id for s in emulator.received.spans(orders)}
    delivered = sum(1 for span_id in watch.good_sent if span_id in received)
    latencies = sorted(watch.readyz)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Row(
        attack=name,
        answers=dict(answers.most_common()),
        readyz_p99_ms=p99 * 1000,
        readyz_max_ms=max(latencies, default=0.0) * 1000,
        peak_rss_mb=max(watch.rss, default=0.0),
        delivered=delivered,
        answered_200=len(watch.good_sent),
        refused=watch.good_refused,
    )


def answers_text(answers: dict[str, int]) -> str:
    return ", ".join(f"{status} x{count}" if count > 1 else status for status, count in answers.items())


def line(row: Row) -> str:
    return (
        f"{row.attack}: {answers_text(row.answers)}; readyz p99 {row.readyz_p99_ms:.0f} ms "
        f"(max {row.readyz_max_ms:.0f}); peak RSS {row.peak_rss_mb:.0f} MB; other client "
        f"{row.delivered}/{row.answered_200} spans delivered, {row.refused} requests refused"
    )


def markdown(rows: list[Row]) -> str:
    out = [
        f"Forwarder flags: `--max-bytes {MAX_BYTES} --read-timeout {READ_TIMEOUT:g}s`, the rest default. "
        f"Regenerated by `make hostile` ({time.strftime('%Y-%m-%d')}, the project's 2-core machine).",
        "",
        "| attack | answer | `/readyz` p99 (max) | peak RSS | other client: spans delivered / answered 200 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        refused = f" ({row.refused} requests refused)" if row.refused else ""
        out.append(
            f"| {row.attack} | {answers_text(row.answers)} | {row.readyz_p99_ms:.0f} ms ({row.readyz_max_ms:.0f} ms) "
            f"| {row.peak_rss_mb:.0f} MB | {row.delivered} / {row.answered_200}{refused} |"
        )
    return "\n".join(out)


def write_doc(table: str) -> None:
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOC} has no {START} … {END} markers")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n{table}\n{END}{after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the attacks whose name contains this text")
    parser.add_argument("--write-doc", action="store_true", help=f"replace the table in {DOC.relative_to(ROOT)}")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = asyncio.run(run(args.only))
    table = markdown(rows)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2))
    if args.write_doc:
        write_doc(table)
    rss_bound = MAX_BYTES_MIB + RSS_CONSTANT_MB  # MiB, like the RSS samples
    failed = [
        row.attack
        for row in rows
        if row.delivered != row.answered_200 or row.readyz_max_ms >= 1000 or row.peak_rss_mb > rss_bound
    ]
    if failed:
        print(
            f"invariants broken (delivery, /readyz within 1 s, RSS within {rss_bound:.0f} MB): {failed}",
            file=sys.stderr,
        )
        raise SystemExit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

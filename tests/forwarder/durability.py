"""Helpers of the durability tests: `sentryroute forwarder` processes on a queue directory, a client that
remembers which spans were answered 2xx (and what refusals said), and an account of what Sentry received.

Used by `test_e2e_durability.py` and by `bench/reliability.py` (the figures of docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import gzip
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from sentryroute.emulator import SentryEmulator
from tests.forwarder.test_admin_process import ForwarderProcess
from tests.forwarder.test_e2e_faults import unique_spans

PROTOBUF_GZIP = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
FAST = (
    "--batch-timeout", "20ms", "--retry-initial", "50ms", "--retry-max", "300ms",
    "--connect-timeout", "500ms", "--export-timeout", "2s", "--shutdown-timeout", "2s",
    "--routes-poll-interval", "50ms",
)  # fmt: skip


async def start_forwarder(routes: Path, *options: str) -> tuple[ForwarderProcess, tuple[int, int, int]]:
    """A forwarder process on free local ports with fast fault-test durations; (process, (http, grpc, admin))."""
    process = ForwarderProcess(
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes),
            "--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            *FAST, *options,
            stderr=asyncio.subprocess.PIPE,
        )
    )  # fmt: skip
    try:
        ports = await process.ports()
    except BaseException:
        process.kill()
        raise
    return process, ports


async def scrape(admin_port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The forwarder's /metrics as {(sample name, sorted labels): value}."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{admin_port}/metrics") as resp,
    ):
        text = await resp.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


@dataclass
class Sender:
    """Sends traces requests (alternating OTLP/HTTP protobuf+gzip and OTLP/gRPC) and remembers the span ids of
    the ones answered with success, and every refusal with its retry hint."""

    http_port: int
    grpc_port: int
    accepted: dict[str, list[str]] = field(default_factory=dict)  # service → span ids answered 2xx
    refusals: list[tuple[str, float | None]] = field(default_factory=list)  # (status, retry hint seconds)
    errors: list[str] = field(default_factory=list)  # no answer at all (the process was gone)
    sent_items: int = 0
    _index: int = 0

    async def send(self, services: tuple[str, ...], spans: int = 10) -> bool:
        """One request with `spans` spans per service; True when answered with success."""
        resources, ids = zip(*(unique_spans(service, spans) for service in services), strict=True)
        body = ExportTraceServiceRequest(resource_spans=resources).SerializeToString()
        self._index += 1
        self.sent_items += spans * len(services)
        ok = await (self._grpc(body) if self._index % 2 else self._http(body))
        if ok:
            for service, span_ids in zip(services, ids, strict=True):
                self.accepted.setdefault(service, []).extend(span_ids)
        return ok

    @property
    def accepted_items(self) -> int:
        return sum(len(ids) for ids in self.accepted.values())

    async def _http(self, body: bytes) -> bool:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{self.http_port}/v1/traces", data=gzip.compress(body), headers=PROTOBUF_GZIP
                ) as resp,
            ):
                if resp.status == 200:
                    return True
                hint = resp.headers.get("Retry-After")
                self.refusals.append((f"HTTP {resp.status}", float(hint) if hint else None))
                return False
        except aiohttp.ClientError as exc:
            self.errors.append(f"HTTP {type(exc).__name__}")
            return False

    async def _grpc(self, body: bytes) -> bool:
        from tests.forwarder.test_receive_grpc import retry_delay

        request = ExportTraceServiceRequest.FromString(body)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)
            return True
        except grpc.aio.AioRpcError as error:
            try:
                hint = retry_delay(error)  # every refusal of the forwarder carries RetryInfo
            except (KeyError, TypeError, ValueError, AssertionError):
                self.errors.append(f"gRPC {error.code().name}: {error.details()}")  # no answer from a forwarder
                return False
            self.refusals.append((f"gRPC {error.code().name}", hint))
            return False


@dataclass(frozen=True)
class Account:
    """What happened to the spans answered 2xx, per the emulator."""

    accepted: int
    delivered: int  # distinct accepted span ids that arrived
    lost: int
    duplicated: int  # extra copies of accepted spans


def account(emulator: SentryEmulator, project_ids: dict[str, str], sender: Sender) -> Account:
    """`project_ids`: service → emulator project id."""
    accepted = delivered = duplicated = 0
    for service, project_id in project_ids.items():
        counted = Counter(span.span_id for span in emulator.received.spans(project_id))
        ids = set(sender.accepted.get(service, ()))
        accepted += len(ids)
        delivered += len(ids & set(counted))
        duplicated += sum(n - 1 for span_id, n in counted.items() if span_id in ids and n > 1)
    return Account(accepted, delivered, accepted - delivered, duplicated)


def all_delivered(emulator: SentryEmulator, project_ids: dict[str, str], sender: Sender) -> bool:
    return account(emulator, project_ids, sender).lost == 0


_REPLAYED = re.compile(r"replayed (\d+) items")


def replayed_items(process: ForwarderProcess) -> int:
    """Items the process said it replayed from its queue directory at start-up."""
    return sum(int(m.group(1)) for line in process.lines if (m := _REPLAYED.search(line)))

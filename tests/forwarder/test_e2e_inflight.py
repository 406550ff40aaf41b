"""A batch refused while in flight is delivered later, byte for byte: real OTLP/HTTP clients → a real forwarder →
the Sentry emulator, which answers 429, 500 or 400 to a batch, or cannot be reached at all.

The forwarder holds a batch being sent as its gzip body, not as its records' payloads, and rebuilds the records
from that body when the answer is not a delivery (`queue/compressed.py`). Every resource a client sent must
arrive exactly once, with the very bytes it was sent with, in a body made of nothing else.
"""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans
from sentryroute_forwarder.app import Forwarder

from sentryroute.emulator import EmulatorConfig, IngestRequest, SentryEmulator
from tests.forwarder.support import (
    emulator_projects,
    emulator_table,
    local_settings,
    metric_value,
    resource_spans,
    wait_until,
    write_table,
)

SERVICE = "checkout-svc"
PROTOBUF_GZIP = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
_tags = itertools.count()


def framed(resource: ResourceSpans) -> bytes:
    """A resource as a request carries it: field 1, length-delimited (how the forwarder cuts and joins them)."""
    data = resource.SerializeToString()
    length, prefix = len(data), bytearray()
    while length >= 0x80:
        prefix.append(length & 0x7F | 0x80)
        length >>= 7
    prefix.append(length)
    return b"\x0a" + bytes(prefix) + data


def resources_of(body: bytes) -> list[bytes]:
    """The framed resources of a delivered body, checked to be all the body is made of."""
    request = ExportTraceServiceRequest.FromString(body)
    pieces = [framed(resource) for resource in request.resource_spans]
    assert b"".join(pieces) == body, "a delivered body is not exactly a concatenation of whole resources"
    return pieces


def delivered(emu: SentryEmulator, project_id: str) -> list[IngestRequest]:
    return [r for r in emu.received.requests(project_id) if r.status == 202]


@pytest.mark.parametrize(
    ("fault", "queue_dir"),
    [("429", False), ("500", False), ("400", False), ("unreachable", False), ("500", True), ("400", True)],
    ids=["429", "500", "400", "unreachable", "500-queue-dir", "400-queue-dir"],
)
async def test_a_batch_refused_in_flight_is_delivered_byte_identical_once(
    fault: str, queue_dir: bool, tmp_path: Path
) -> None:
    """With `--queue-dir` the released payloads are read back from disk instead of inflated."""
    async with SentryEmulator(EmulatorConfig(keep_bodies=True)) as emu:
        services = emulator_projects(emu, {SERVICE: "checkout"})
        project = services[SERVICE][0]
        table = emulator_table(emu, services)
        path = tmp_path / "routes.json"
        if fault == "unreachable":  # the first table's URLs lead nowhere: connection refused
            endpoint = table.projects["acme/checkout"]
            wrong = endpoint.model_copy(update={"tracesUrl": "http://127.0.0.1:9/api/1/integration/otlp/v1/traces/"})
            write_table(path, table.model_copy(update={"projects": {"acme/checkout": wrong}}).with_revision())
        else:
            write_table(path, table)
        if fault == "429":
            emu.faults.rate_limit_bare(project.id, count=1)  # no header: `--default-rate-limit` applies
        elif fault in ("500", "400"):
            emu.faults.fail(project.id, status=int(fault), count=1)
        settings = local_settings(
            path,
            batch_timeout=0.3,
            retry_initial=0.05,
            retry_max=0.2,
            default_rate_limit=0.2,
            export_timeout=10.0,
            queue_dir=tmp_path / "queue" if queue_dir else None,
        )
        sent: list[bytes] = []
        async with Forwarder(settings) as forwarder, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
            # Requests of two resources each, back to back: several records in the first batch, each of which a
            # 400 can split further.
            for _ in range(6):
                resources = [resource_spans(SERVICE, spans=20, tag=f"r{next(_tags)}-") for _ in range(2)]
                body = ExportTraceServiceRequest(resource_spans=resources).SerializeToString()
                async with http.post(url, data=gzip.compress(body), headers=PROTOBUF_GZIP) as resp:
                    assert resp.status == 200
                sent += [framed(resource) for resource in resources]
            if fault == "unreachable":
                labels = {"project": "acme/checkout", "outcome": "retry"}
                await wait_until(
                    lambda: metric_value(forwarder, "sentryroute_export_requests_total", labels) >= 1,
                    what="a batch sent to where nothing listens",
                )
                write_table(path, table)  # the operator fixes the URL
            await wait_until(
                lambda: sum(len(resources_of(r.body)) for r in delivered(emu, project.id)) >= len(sent),
                what="every resource delivered",
            )
            exported = {"signal": "traces", "project": "acme/checkout"}
            await wait_until(
                lambda: metric_value(forwarder, "sentryroute_exported_items_total", exported) == 20 * len(sent),
                what="every export counted",
            )
            dropped = forwarder.metrics.registry.get_sample_value("sentryroute_dropped_items_total", {})
            assert dropped is None

        answers = emu.received.requests(project.id)
        arrived = [piece for r in delivered(emu, project.id) for piece in resources_of(r.body)]
        assert Counter(arrived) == Counter(sent), "a resource was lost, duplicated or changed"
        assert len(set(sent)) == len(sent)
        if fault == "unreachable":
            assert [r.status for r in answers] == [202] * len(answers)
            return
        refused, after = answers[0], answers[1]
        assert refused.status == int(fault) and after.status == 202
        if fault == "400":
            # Halved: the next body is the first half of the refused one, the same bytes.
            assert len(after.body) < len(refused.body) and refused.body.startswith(after.body)
        else:
            # Sent again as it was (data that arrived meanwhile may follow it in the same batch).
            assert after.body.startswith(refused.body)

"""Helpers of the tenancy tests: Pods with loopback addresses, and clients that send from a chosen source address.

The whole 127.0.0.0/8 range is loopback on Linux, so each emulated Pod gets its own address and a client binds
it as its source: aiohttp through `local_addr`, gRPC (whose channels cannot bind a source address) through a
small TCP proxy that connects to the forwarder from that address.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sentryroute.kube import KubeEmulator

TRACES_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def pod(name: str, namespace: str, *ips: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A running Pod whose status lists `ips` (written through the status subresource, like a kubelet)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
        "status": {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]},
    }


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def delete_pod(kube: KubeEmulator, namespace: str, name: str) -> None:
    import kmock

    kube.call(lambda: kube.emulator.store.delete_object(kmock.resource("v1/pods"), namespace, name))


async def post_from(source: str, url: str, body: bytes) -> int:
    """POST an OTLP/protobuf body from source address `source`; returns the HTTP status."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession(connector=connector) as http, http.post(url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


@contextlib.asynccontextmanager
async def tcp_proxy_from(source: str, target: tuple[str, int]) -> AsyncIterator[int]:
    """Listen on 127.0.0.1 (port yielded); every connection is relayed to `target` from address `source`."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    tasks: set[asyncio.Task[None]] = set()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target, local_addr=(source, 0))
        for task in (pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer)):
            tasks.add(asyncio.create_task(task))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def grpc_export_from(source: str, port: int, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    """A TraceService Export over a real gRPC channel whose connection comes from `source`."""
    async with (
        tcp_proxy_from(source, ("127.0.0.1", port)) as proxy_port,
        grpc.aio.insecure_channel(f"127.0.0.1:{proxy_port}") as channel,
    ):
        export = channel.unary_unary(
            TRACES_EXPORT,
            request_serializer=ExportTraceServiceRequest.SerializeToString,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        response: ExportTraceServiceResponse = await export(request, timeout=20)
        return response

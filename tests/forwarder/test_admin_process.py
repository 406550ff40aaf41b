"""`sentryroute forwarder` as a process: serves on free ports, logs JSON lines that never carry a secret, and on
SIGTERM flushes what it can within `--shutdown-timeout`, then names what it could not deliver and exits 0."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from sentryroute.emulator import SentryEmulator
from sentryroute.routes import RoutesTable
from tests.forwarder.queue_support import Upstream
from tests.forwarder.support import emulator_table, resource_spans, traces_request, wait_until, write_table
from tests.forwarder.test_e2e_faults import projects

TOKEN = "canary-bearer-7f3a9c1e5b2d"
WRONG_TOKEN = "canary-wrong-c4d2e8f1a0b9"
ECHO_KEY = "e1e2e3e4e5e6e7e8e9eaebecedeeeff0"  # the key of a project whose Sentry quotes it back in errors
SHUTDOWN_TIMEOUT = 3.0
_LISTENING = re.compile(r"OTLP/HTTP 127\.0\.0\.1:(\d+), OTLP/gRPC 127\.0\.0\.1:(\d+), admin 127\.0\.0\.1:(\d+)")


class ForwarderProcess:
    """A `sentryroute forwarder` child process whose stderr is collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode())

    async def ports(self) -> tuple[int, int, int]:
        """(OTLP/HTTP, OTLP/gRPC, admin) from the "listening" log line."""
        await wait_until(
            lambda: any(_LISTENING.search(line) for line in self.lines) or self.process.returncode is not None,
            within=60,
            what="the forwarder to listen",
        )
        match = next((m for line in self.lines if (m := _LISTENING.search(line))), None)
        assert match is not None, "".join(self.lines)
        http, grpc_port, admin = (int(port) for port in match.groups())
        return http, grpc_port, admin

    async def finish(self) -> int:
        returncode = await self.process.wait()
        await self._reader
        return returncode

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


def table_with_echo(emu: SentryEmulator, services: dict, upstream: Upstream) -> RoutesTable:
    """The emulator's projects plus `echo-svc` → `acme/up`, a scripted Sentry that quotes the key back."""
    content = emulator_table(emu, services).content()
    content["routes"] = [*content["routes"], {"attribute": "service.name", "value": "echo-svc", "project": "acme/up"}]
    content["projects"] = {**content["projects"], "acme/up": upstream.endpoint(key=ECHO_KEY)}
    return RoutesTable.model_validate(content).with_revision()


async def raw_request(port: int, header: bytes) -> bytes:
    """A POST with one raw header line; the answer (read until the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n" + header + b"Content-Length: 0\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def post(http: aiohttp.ClientSession, port: int, body: bytes, token: str) -> int:
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"}
    async with http.post(f"http://127.0.0.1:{port}/v1/traces", data=body, headers=headers) as resp:
        return resp.status


async def test_sigterm_flushes_within_the_bound_reports_the_rest_and_logs_no_secret(
    emulator: SentryEmulator, upstream: Upstream, tmp_path: Path
) -> None:
    services = projects(emulator, "orders", "limited")
    orders, limited = services["orders-svc"][0], services["limited-svc"][0]
    emulator.faults.delay(orders.id, seconds=0.5)  # orders' data is still in flight at SIGTERM
    emulator.faults.rate_limit(limited.id, seconds=60, categories="span")  # limited's cannot go before the bound
    quoted = f"sentry sentry_key={ECHO_KEY}"
    upstream.body = f'{{"detail":"rejected x-sentry-auth: {quoted}; key {ECHO_KEY}"}}'.encode()
    upstream.script = [(503, {}), (503, {})]
    upstream.status = 401  # after two failures: refused, so its data is held
    routes, token_file = tmp_path / "routes.json", tmp_path / "token"
    write_table(routes, table_with_echo(emulator, services, upstream))
    token_file.write_text(TOKEN)
    process = ForwarderProcess(
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes),
            "--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--auth-token-file", str(token_file), "--log-format", "json", "--log-level", "debug",
            "--shutdown-timeout", f"{SHUTDOWN_TIMEOUT:g}s", "--batch-timeout", "50ms",
            "--retry-initial", "50ms", "--retry-max", "200ms",
            stderr=asyncio.subprocess.PIPE,
        )
    )  # fmt: skip
    try:
        http_port, grpc_port, admin_port = await process.ports()
        body = traces_request(*(resource_spans(s, spans=4) for s in ("orders-svc", "limited-svc", "echo-svc")))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{admin_port}/readyz") as resp:
                assert resp.status == 200
            assert await post(http, http_port, body.SerializeToString(), WRONG_TOKEN) == 401
            # A header the HTTP parser refuses: its error (logged at debug) quotes the raw line, token included.
            answer = await raw_request(http_port, f"Authorization: Bearer {TOKEN}\x01\r\n".encode())
            assert answer.split(b" ", 2)[1] == b"400"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                        body, timeout=10, metadata=(("authorization", f"Bearer {WRONG_TOKEN}"),)
                    )
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert await post(http, http_port, body.SerializeToString(), TOKEN) == 200
            await wait_until(
                lambda: (
                    any(r.status == 429 for r in emulator.received.requests(limited.id))
                    and [seen.status for seen in upstream.seen] == [503, 503, 401]
                ),
                within=30,
                what="a 429 for limited and a refusal of echo",
            )
            assert await post(http, http_port, body.SerializeToString(), TOKEN) == 200

        process.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        async with asyncio.timeout(30):
            assert await process.finish() == 0
        # A 60 s rate limit and a held project are not waited for; orders' slow requests are.
        assert time.monotonic() - signalled < SHUTDOWN_TIMEOUT + 5
    finally:
        process.kill()

    assert emulator.received.span_count(orders.id) == 8
    assert len(upstream.seen) == 3  # held: nothing more was sent to the refusing project
    entries = [json.loads(line) for line in process.lines]  # every line is a JSON object
    messages = [entry["message"] for entry in entries]
    assert "shutdown: 8 items for project 'acme/limited' were not delivered" in messages
    assert "shutdown: 8 items for project 'acme/up' were not delivered" in messages
    assert "forwarder stopped; 16 items could not be delivered" in messages
    assert any("export failed (503" in m for m in messages) and any("refused its key" in m for m in messages)

    output = "".join(process.lines)
    keys = [key.public for _, key in services.values()]
    for secret in (TOKEN, WRONG_TOKEN, ECHO_KEY, *keys):
        assert secret not in output, f"a secret leaked into the logs: {secret[:6]}…"

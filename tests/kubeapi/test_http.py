"""The HTTP/1.1 under `KubeClient` (sentryroute/kubeapi/http.py): TLS with the kubeconfig's CA, the answer
framings an API server uses, broken answers as one error type, and no aiohttp in a process that only talks to
the API (the forwarder's watches)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sentryroute.kube import KubeEmulator
from sentryroute.kubeapi import ApiAccess, KubeApiError, KubeClient, configmap_path

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A server that reads one request head and lets `handler` answer it byte by byte."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    async with server:
        yield server.sockets[0].getsockname()[1]


def client_for(url: str, context: ssl.SSLContext | None = None) -> KubeClient:
    return KubeClient(access_loader=lambda: ApiAccess(url, {"Authorization": "Bearer t"}, context), timeout=5)


def answer(*parts: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()

    return handler


async def test_tls_checks_the_server_against_the_kubeconfig_ca(pki: Path) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki / "server.crt", pki / "server.key")
    body = b'{"kind": "ConfigMap"}'
    handler = answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    async with raw_server(handler, server_tls) as port:
        trusted = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        assert await client_for(f"https://localhost:{port}", trusted).get("/x") == {"kind": "ConfigMap"}
        with pytest.raises(KubeApiError) as untrusted:  # the system store does not know this CA
            await client_for(f"https://localhost:{port}").get("/x")
        assert untrusted.value.status is None and "SSL" in str(untrusted.value)


@pytest.mark.parametrize(
    "parts",
    [
        [b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"a"', b": 1}\n   "],
        [b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n', b"5\r\n: 1}\n\r\n0\r\n\r\n"],
        [b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"a": 1}'],  # ends at close
    ],
    ids=["content-length", "chunked", "close-delimited"],
)
async def test_answer_framings(parts: list[bytes]) -> None:
    async with raw_server(answer(*parts)) as port:
        assert await client_for(f"http://127.0.0.1:{port}").get("/x") == {"a": 1}


@pytest.mark.parametrize(
    "parts",
    [
        [b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a": 1'],  # cut short
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],  # broken chunk
        [b"not http at all\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70_000],  # an endless head
    ],
    ids=["cut-short", "broken-chunk", "not-http", "endless-head"],
)
async def test_broken_answers_are_api_errors(parts: list[bytes]) -> None:
    async with raw_server(answer(*parts)) as port:
        with pytest.raises(KubeApiError) as broken:
            await client_for(f"http://127.0.0.1:{port}").get("/x")
        assert broken.value.status is None


async def test_a_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    async with raw_server(silent) as port:
        client = KubeClient(access_loader=lambda: ApiAccess(f"http://127.0.0.1:{port}", {}, None), timeout=0.3)
        with pytest.raises(KubeApiError) as slow:
            await client.get("/x")
        assert "TimeoutError" in str(slow.value)


async def test_header_injection_is_refused() -> None:
    client = KubeClient(access_loader=lambda: ApiAccess("http://127.0.0.1:1", {"Authorization": "x\r\nEvil: 1"}, None))
    with pytest.raises(ValueError, match="break the request"):
        await client.get("/x")


async def test_watching_needs_no_aiohttp(tmp_path: Path) -> None:
    """The forwarder's list+watch through this package, in a fresh interpreter: aiohttp is never imported."""
    async with KubeEmulator(kubeconfig_path=tmp_path / "kubeconfig") as kube:
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})
        code = f"""
import asyncio, json, sys
from sentryroute.kubeapi import KubeClient, ListWatch, WatchEventType
async def main():
    async with KubeClient(kubeconfig={str(kube.kubeconfig_path)!r}) as client:
        events = ListWatch(client, {configmap_path("default")!r}, page_size=1).events()
        listed = await anext(events)
        await events.aclose()
    print(json.dumps([[o["data"] for o in listed.objects], [m for m in sys.modules if m.startswith("aiohttp")]]))
asyncio.run(main())
"""
        run = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=subprocess.PIPE)
        out, _ = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 0
    assert json.loads(out) == [[{"k": "v"}], []]


async def test_a_server_repeating_its_continue_token_does_not_list_forever() -> None:
    """An API server (or proxy) that hands back the continue token it was sent would have `list_pages` loop
    and the listing grow without end: the repeated token is refused, and no listing is applied."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(b"")
        body = json.dumps({"metadata": {"resourceVersion": "7", "continue": "again"}, "items": [{"n": 1}]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    async with raw_server(handler) as port:
        client = client_for(f"http://127.0.0.1:{port}")
        with pytest.raises(KubeApiError, match="continue token"):
            await asyncio.wait_for(client.list("/api/v1/pods"), 30)
    assert len(seen) == 2  # the first page, then the token once: its repetition ends the listing

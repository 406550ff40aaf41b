"""TLS, mTLS (with certificate reload) and bearer-token auth on both receivers, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from sentryroute_forwarder.app import Forwarder

from tests.forwarder.support import local_settings, resource_spans, traces_request, wait_until

PROTOBUF = {"Content-Type": "application/x-protobuf"}
BODY = traces_request(resource_spans("orders")).SerializeToString()
TOKEN = "s3cr3t-t0ken-canary"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def issue(name: str, *, ca: str, cwd: Path, san: str) -> None:
    """`name.key` / `name.crt` signed by `ca` (EC keys: fast)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)  # fmt: skip
    (cwd / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, two server certificates (for rotation) and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    cwd = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=sentryroute-test-ca", cwd=cwd)  # fmt: skip
    for name in ("server-a", "server-b"):
        issue(name, ca="ca", cwd=cwd, san="DNS:localhost,IP:127.0.0.1")
    issue("client", ca="ca", cwd=cwd, san="DNS:client")
    return cwd


@pytest.fixture
def server_files(pki, tmp_path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(pki / "server-a.crt", cert)
    shutil.copy(pki / "server-a.key", key)
    return cert, key


def client_context(pki: Path, *, with_client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if with_client_cert:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    return context


async def peer_common_name(port: int, context: ssl.SSLContext) -> str:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    try:
        subject = writer.get_extra_info("peercert")["subject"]
        return dict(pair[0] for pair in subject)["commonName"]
    finally:
        writer.close()


async def test_tls_on_both_receivers_and_certificate_reload(pki, server_files, routes_path, fake_pipeline):
    cert, key = server_files
    settings = local_settings(routes_path, tls_cert=cert, tls_key=key)
    context = client_context(pki, with_client_cert=False)
    async with Forwarder(settings, pipeline=fake_pipeline) as forwarder:
        async with aiohttp.ClientSession() as http:
            url = f"https://localhost:{forwarder.http_port}/v1/traces"
            async with http.post(url, data=BODY, headers=PROTOBUF, ssl=context) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientError):
                await http.post(f"http://127.0.0.1:{forwarder.http_port}/v1/traces", data=BODY, headers=PROTOBUF)

        credentials = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{forwarder.grpc_port}", credentials) as channel:
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces_request(resource_spans("orders")))
        assert len(fake_pipeline.parts) == 2

        # Rotate the certificate: new connections get the new one, on both receivers.
        assert await peer_common_name(forwarder.http_port, context) == "server-a"
        shutil.copy(pki / "server-b.key", key)
        shutil.copy(pki / "server-b.crt", cert)

        async def rotated() -> bool:
            return await peer_common_name(forwarder.http_port, context) == "server-b"

        await wait_until(rotated, what="the HTTP receiver to serve the new certificate")
        assert await peer_common_name(forwarder.grpc_port, context) == "server-b"


async def test_mutual_tls_requires_a_client_certificate(pki, server_files, routes_path, fake_pipeline):
    cert, key = server_files
    settings = local_settings(routes_path, tls_cert=cert, tls_key=key, client_ca=pki / "ca.crt")
    async with Forwarder(settings, pipeline=fake_pipeline) as forwarder, aiohttp.ClientSession() as http:
        url = f"https://localhost:{forwarder.http_port}/v1/traces"
        with pytest.raises(aiohttp.ClientError):
            async with http.post(url, data=BODY, headers=PROTOBUF, ssl=client_context(pki, with_client_cert=False)):
                pass
        async with http.post(url, data=BODY, headers=PROTOBUF, ssl=client_context(pki, with_client_cert=True)) as resp:
            assert resp.status == 200

        ca = (pki / "ca.crt").read_bytes()
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        async with grpc.aio.secure_channel(f"localhost:{forwarder.grpc_port}", anonymous) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                    traces_request(resource_spans("orders")), timeout=10
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        mutual = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.crt").read_bytes(),
        )
        async with grpc.aio.secure_channel(f"localhost:{forwarder.grpc_port}", mutual) as channel:
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces_request(resource_spans("orders")))
    assert len(fake_pipeline.parts) == 2


async def test_bearer_token_on_both_receivers(tmp_path, routes_path, fake_pipeline, caplog):
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    settings = local_settings(routes_path, auth_token_file=token_file)
    async with Forwarder(settings, pipeline=fake_pipeline) as forwarder, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{forwarder.http_port}/v1/traces"
        for authorization in (None, "Bearer wrong", f"Basic {TOKEN}", TOKEN):
            headers = dict(PROTOBUF, **({"Authorization": authorization} if authorization else {}))
            async with http.post(url, data=BODY, headers=headers) as resp:
                assert resp.status == 401, authorization
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.post(url, data=BODY, headers={**PROTOBUF, "Authorization": f"bearer {TOKEN}"}) as resp:
            assert resp.status == 200

        async with grpc.aio.insecure_channel(f"127.0.0.1:{forwarder.grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            request = traces_request(resource_spans("orders"))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Export(request, timeout=10, metadata=(("authorization", "Bearer nope"),))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            await stub.Export(request, timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))

        # A rotated token file takes effect without a restart.
        token_file.write_text("rotated-token")

        async def accepted(token: str) -> bool:
            async with http.post(url, data=BODY, headers={**PROTOBUF, "Authorization": f"Bearer {token}"}) as resp:
                return resp.status == 200

        await wait_until(lambda: accepted("rotated-token"), what="the rotated token to be accepted")
        assert not await accepted(TOKEN)
    assert len(fake_pipeline.parts) == 3
    assert TOKEN not in caplog.text

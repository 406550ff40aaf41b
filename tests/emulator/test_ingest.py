"""OTLP ingest conformance (reference §2): routes, auth, content checks, size limit, 202 and the record."""

from __future__ import annotations

import gzip
import json
import zlib

import aiohttp
import pytest

from sentryroute.emulator import EmulatorConfig, SentryEmulator
from tests.emulator.conftest import PROTOBUF, Seeded, StartEmulator, logs_request, traces_request

REJECTED = {"detail": "event submission rejected with_reason: ProjectId"}


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    content_type: str = PROTOBUF,
    **kwargs: object,
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with http.post(url, data=body, headers={"Content-Type": content_type, **headers}, **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.read(), resp


async def test_protobuf_gzip_is_accepted_with_empty_202_and_recorded(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    body = gzip.compress(traces_request(spans=3).SerializeToString())
    headers = {**seeded.sentry_auth(), "Content-Encoding": "gzip"}
    status, payload, _ = await post(http, emu.otlp_url(seeded.checkout.id), body, headers)
    assert (status, payload) == (202, b"")
    spans = emu.received.spans(seeded.checkout.id)
    assert [s.name for s in spans] == ["span-0", "span-1", "span-2"]
    assert spans[0].service_name == "checkout-svc"
    assert spans[0].resource == {"service.name": "checkout-svc"}
    assert spans[0].trace_id == "01" * 16
    (request,) = emu.received.requests(seeded.checkout.id)
    assert (request.signal, request.status, request.content_encoding, request.raw_size) == (
        "traces",
        202,
        "gzip",
        len(body),
    )
    assert request.public_key == seeded.key
    assert emu.received.spans(seeded.payments.id) == []


async def test_logs_deflate_trailing_slash(seeded: Seeded, http: aiohttp.ClientSession):
    emu = seeded.emu
    body = zlib.compress(logs_request(body="disk full").SerializeToString())
    url = emu.otlp_url(seeded.checkout.id, "logs") + "/"
    status, payload, _ = await post(http, url, body, {**seeded.sentry_auth(), "Content-Encoding": "deflate"})
    assert (status, payload) == (202, b"")
    (log,) = emu.received.logs(seeded.checkout.id)
    assert (log.body, log.severity_number, log.service_name) == ("disk full", 9, "checkout-svc")


async def test_json_payload_with_hex_ids(seeded: Seeded, http: aiohttp.ClientSession):
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [{"spans": [{"traceId": trace_id, "spanId": span_id, "name": "GET /", "kind": 2}]}],
            }
        ]
    }
    url = seeded.emu.otlp_url(seeded.checkout.id)
    body = json.dumps(doc).encode()
    status, _, _ = await post(http, url, body, seeded.sentry_auth(), "application/json; charset=utf-8")
    assert status == 202
    (span,) = seeded.emu.received.spans(seeded.checkout.id)
    assert (span.trace_id, span.span_id, span.service_name) == (trace_id, span_id, "json-svc")


async def test_legacy_route_and_other_auth_forms(seeded: Seeded, http: aiohttp.ClientSession):
    emu, pid, key = seeded.emu, seeded.checkout.id, seeded.key
    body = traces_request().SerializeToString()
    legacy = f"{emu.url}/api/{pid}/otlp/v1/traces"
    full_form = {"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.0"}
    assert (await post(http, legacy, body, full_form))[0] == 202
    authorization = {"Authorization": f"Sentry sentry_key={key}"}
    assert (await post(http, emu.otlp_url(pid), body, authorization))[0] == 202
    assert (await post(http, emu.otlp_url(pid) + f"?sentry_key={key}", body, {}))[0] == 202
    assert len(emu.received.spans(pid)) == 3


async def test_auth_failures(seeded: Seeded, http: aiohttp.ClientSession):
    url, body = seeded.emu.otlp_url(seeded.checkout.id), traces_request().SerializeToString()
    status, payload, _ = await post(http, url, body, {})
    assert (status, json.loads(payload)) == (401, {"detail": "missing authorization information"})
    status, payload, _ = await post(http, url + f"?sentry_key={seeded.key}", body, seeded.sentry_auth())
    assert (status, json.loads(payload)) == (401, {"detail": "multiple authorization payloads detected"})
    assert (await post(http, url, body, {"x-sentry-auth": "Bearer abc"}))[0] == 401
    assert (await post(http, url, body, {"x-sentry-auth": "sentry sentry_key=not-hex"}))[0] == 400
    assert seeded.emu.received.spans(seeded.checkout.id) == []


async def test_project_and_key_rejections(seeded: Seeded, http: aiohttp.ClientSession):
    emu, body = seeded.emu, traces_request().SerializeToString()
    # Another project's key.
    status, payload, _ = await post(http, emu.otlp_url(seeded.payments.id), body, seeded.sentry_auth())
    assert (status, json.loads(payload)) == (403, REJECTED)
    # Unknown project.
    assert (await post(http, emu.otlp_url(999999), body, seeded.sentry_auth()))[0] == 403
    # Unknown key.
    assert (await post(http, emu.otlp_url(seeded.checkout.id), body, seeded.sentry_auth("ab" * 16)))[0] == 403
    # Disabled key.
    emu.state.set_key_active(seeded.key, False)
    assert (await post(http, emu.otlp_url(seeded.checkout.id), body, seeded.sentry_auth()))[0] == 403
    emu.state.set_key_active(seeded.key, True)
    assert (await post(http, emu.otlp_url(seeded.checkout.id), body, seeded.sentry_auth()))[0] == 202
    # Deleted project.
    emu.state.delete_project("acme", "checkout")
    status, payload, _ = await post(http, emu.otlp_url(seeded.checkout.id), body, seeded.sentry_auth())
    assert (status, json.loads(payload)) == (403, REJECTED)
    assert len(emu.received.spans(seeded.checkout.id)) == 1


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [("text/plain", ""), ("application/protobuf", ""), (PROTOBUF, "br-unknown"), (PROTOBUF, "compress")],
)
async def test_unsupported_media_type_is_415_with_empty_body(
    seeded: Seeded, http: aiohttp.ClientSession, content_type: str, encoding: str
):
    headers = {**seeded.sentry_auth(), "Content-Encoding": encoding} if encoding else seeded.sentry_auth()
    url = seeded.emu.otlp_url(seeded.checkout.id)
    status, payload, _ = await post(http, url, traces_request().SerializeToString(), headers, content_type)
    assert (status, payload) == (415, b"")


async def test_strict_content_type_rejects_parameters(start_emulator: StartEmulator, http: aiohttp.ClientSession):
    seeded = await start_emulator(strict_content_type=True)
    url, body = seeded.emu.otlp_url(seeded.checkout.id), b"{}"
    assert (await post(http, url, body, seeded.sentry_auth(), "application/json; charset=utf-8"))[0] == 415
    assert (await post(http, url, body, seeded.sentry_auth(), "Application/JSON"))[0] == 202


async def test_body_limit_413_after_decompression_and_gzip_bomb(
    start_emulator: StartEmulator, http: aiohttp.ClientSession
):
    seeded = await start_emulator(body_limit=64 * 1024)
    url = seeded.emu.otlp_url(seeded.checkout.id)
    big = traces_request(spans=3000).SerializeToString()
    assert len(big) > 64 * 1024
    status, payload, _ = await post(http, url, big, seeded.sentry_auth())
    assert status == 413 and json.loads(payload)["detail"].startswith("envelope exceeded size limits")
    # Small on the wire, over the limit once inflated.
    compressed = gzip.compress(big)
    assert len(compressed) < 64 * 1024
    headers = {**seeded.sentry_auth(), "Content-Encoding": "gzip"}
    assert (await post(http, url, compressed, headers))[0] == 413
    # A gzip bomb: 200 MiB of zeros in ~200 KiB is refused without inflating it all.
    bomb = gzip.compress(bytes(200 * 1024 * 1024), compresslevel=9)
    assert (await post(http, url, bomb, headers))[0] == 413
    # Under the limit still works.
    assert (await post(http, url, gzip.compress(traces_request().SerializeToString()), headers))[0] == 202


async def test_corrupt_gzip_is_400_and_malformed_payload_is_202_invalid(seeded: Seeded, http: aiohttp.ClientSession):
    emu, url = seeded.emu, seeded.emu.otlp_url(seeded.checkout.id)
    headers = {**seeded.sentry_auth(), "Content-Encoding": "gzip"}
    assert (await post(http, url, b"definitely not gzip", headers))[0] == 400
    assert (await post(http, url, b"\xff\xff\xff garbage", seeded.sentry_auth()))[0] == 202
    assert (await post(http, url, b"{not json", seeded.sentry_auth(), "application/json"))[0] == 202
    assert emu.received.invalid(seeded.checkout.id) == 2
    assert emu.received.spans(seeded.checkout.id) == []


async def test_path_prefix_and_public_host_in_dsn(http: aiohttp.ClientSession):
    config = EmulatorConfig(path_prefix="sentry/", public_host="sentry.example:8443")
    async with SentryEmulator(config) as emu:
        emu.state.add_org("acme")
        emu.state.add_team("acme", "backend")
        project = emu.state.add_project("acme", "backend", "checkout")
        key = emu.state.project_keys(project.id)[0].public
        assert emu.url.endswith("/sentry")
        assert emu.dsn(key) == f"http://{key}@sentry.example:8443/sentry/{project.id}"
        body = traces_request().SerializeToString()
        status, _, _ = await post(http, emu.otlp_url(project.id), body, {"x-sentry-auth": f"sentry sentry_key={key}"})
        assert status == 202
        unprefixed = emu.otlp_url(project.id).replace("/sentry/", "/")
        assert (await post(http, unprefixed, body, {"x-sentry-auth": f"sentry sentry_key={key}"}))[0] == 404


async def test_get_is_not_routed(seeded: Seeded, http: aiohttp.ClientSession):
    async with http.get(seeded.emu.otlp_url(seeded.checkout.id)) as resp:
        assert resp.status == 405

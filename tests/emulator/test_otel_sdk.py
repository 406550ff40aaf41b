"""Real OpenTelemetry SDK exporters (http/protobuf) against an emulator running in its own thread."""

from __future__ import annotations

import json
import urllib.request

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sentryroute.emulator import EmulatorConfig, SentryEmulator
from tests.emulator.conftest import seed


def _first_key(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)[0]


def test_sdk_exporters_deliver_to_the_project_from_the_keys_api():
    with SentryEmulator(EmulatorConfig(path_prefix="/sentry")).running_in_thread() as emu:
        seeded = seed(emu)
        key = _first_key(f"{emu.url}/api/0/projects/acme/checkout/keys/", seeded.token)
        headers = {"x-sentry-auth": f"sentry sentry_key={key['public']}"}
        resource = Resource.create({"service.name": "sdk-svc", "deployment.environment": "test"})

        tracer_provider = TracerProvider(resource=resource)
        # The Sentry exporter's form: the dsn's otlp_traces URL with a trailing slash, gzip.
        exporter = OTLPSpanExporter(
            endpoint=key["dsn"]["otlp_traces"] + "/", headers=headers, compression=Compression.Gzip
        )
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        with tracer_provider.get_tracer("test").start_as_current_span("checkout") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        tracer_provider.shutdown()

        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=key["dsn"]["otlp_logs"], headers=headers))
        )
        logger_provider.get_logger("test").emit(body="payment declined", severity_number=SeverityNumber.WARN)
        logger_provider.shutdown()

        (span_record,) = emu.received.spans(seeded.checkout.id)
        assert (span_record.name, span_record.service_name, span_record.trace_id) == ("checkout", "sdk-svc", trace_id)
        assert span_record.resource["deployment.environment"] == "test"
        (log,) = emu.received.logs(seeded.checkout.id)
        assert (log.body, log.service_name, log.severity_number) == ("payment declined", "sdk-svc", 13)
        assert {r.status for r in emu.received.requests(seeded.checkout.id)} == {202}
        assert emu.received.requests()[0].content_encoding == "gzip"

"""Decoding of OTLP/HTTP payloads (protobuf or JSON) into the emulator's received records."""

from __future__ import annotations

import binascii
import json
from typing import Any

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from sentryroute.emulator.ingest.prost_rules import prost_refusal
from sentryroute.emulator.received import ReceivedLog, ReceivedSpan
from sentryroute.otlp_json import InvalidJson, parse_otlp_json


class InvalidPayload(Exception):
    """The body is not a decodable OTLP request (Relay still answers 202 and drops it)."""


def _parse(message: Message, body: bytes, *, is_json: bool) -> None:
    """Decode as Relay does: protobuf by prost's rules (upb, then what prost refuses beyond it), or JSON."""
    try:
        if is_json:
            message.CopyFrom(parse_otlp_json(body, type(message)))
        else:
            message.ParseFromString(body)
    except (DecodeError, InvalidJson) as exc:
        raise InvalidPayload(str(exc)) from exc
    if not is_json and (reason := prost_refusal(message)) is not None:
        raise InvalidPayload(reason)


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode("ascii")
    return getattr(value, kind) if kind else None


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items if isinstance(kv, KeyValue)}


def _body_text(value: Any) -> str:
    """Relay keeps only string bodies; other bodies are shown as JSON so tests can still see them."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _service_name(resource: dict[str, Any]) -> str:
    name = resource.get("service.name")
    return name if isinstance(name, str) else "unknown_service"


def decode_traces(body: bytes, *, is_json: bool) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    _parse(request, body, is_json=is_json)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        service = _service_name(resource)
        for scope_spans in resource_spans.scope_spans:
            spans.extend(
                ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    service_name=service,
                    resource=resource,
                    attributes=attributes(span.attributes),
                )
                for span in scope_spans.spans
            )
    return spans


def decode_logs(body: bytes, *, is_json: bool) -> list[ReceivedLog]:
    request = ExportLogsServiceRequest()
    _parse(request, body, is_json=is_json)
    logs: list[ReceivedLog] = []
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        service = _service_name(resource)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                body_value = any_value(record.body)
                logs.append(
                    ReceivedLog(
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        body=_body_text(body_value),
                        severity_number=int(record.severity_number),
                        severity_text=record.severity_text,
                        service_name=service,
                        resource=resource,
                        attributes=attributes(record.attributes),
                    )
                )
    return logs

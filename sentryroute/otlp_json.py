"""OTLP/JSON request bodies → protobuf, shared by the forwarder's receivers and the Sentry emulator's ingest.

OTLP/JSON is the proto3 JSON mapping with one difference: trace and span ids are hex strings, not
base64. They are rewritten to base64 before the standard parser runs; unknown fields are ignored, as
the OTLP specification asks of receivers.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["InvalidJson", "parse_otlp_json", "to_otlp_json"]

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})

M = TypeVar("M", bound=Message)


class InvalidJson(ValueError):
    """The body is not OTLP/JSON for this request type; the message is safe to return to the client."""


def parse_otlp_json(body: bytes, message_type: type[M]) -> M:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise InvalidJson("body must be a JSON object")
    _hex_ids_to_base64(document)
    message = message_type()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise InvalidJson(f"body is not a valid {message_type.DESCRIPTOR.name}: {str(exc)[:200]}") from None
    return message


def to_otlp_json(message: Message) -> bytes:
    """A response message as OTLP/JSON (lowerCamelCase keys; responses carry no ids)."""
    return json_format.MessageToJson(message, indent=None).encode()


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite every id field in place, walking iteratively (client JSON may nest deeply)."""
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    node[key] = _hex_to_base64(key, value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))


def _hex_to_base64(key: str, value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InvalidJson(f"{key} must be a hex string") from None
    return base64.b64encode(raw).decode("ascii")

"""`service.name` inside `OTEL_RESOURCE_ATTRIBUTES`, parsed the way OpenTelemetry SDKs parse it.

The OTel SDK specification: a comma-separated list of `key=value` pairs, keys and values percent-decoded,
surrounding whitespace trimmed; on any error the whole variable is discarded. We follow that exactly so
the name we provision is the name the SDK will report.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
SERVICE_NAME_KEY = "service.name"


def _decode(text: str) -> str | None:
    if _BAD_PERCENT.search(text):
        return None
    try:
        return unquote(text.strip(), errors="strict")
    except UnicodeDecodeError:
        return None


def service_name_from_resource_attributes(raw: str) -> str | None:
    """The `service.name` in `raw`, or None when absent or when the variable is malformed."""
    found: str | None = None
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        decoded_key, decoded_value = _decode(key), _decode(value)
        if not sep or not decoded_key or decoded_value is None:
            return None  # the SDK discards the whole variable, so it reports no name from it
        if decoded_key == SERVICE_NAME_KEY:
            found = decoded_value  # a later duplicate overrides, as in the SDKs' dict construction
    return found

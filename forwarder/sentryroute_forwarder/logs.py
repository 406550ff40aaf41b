"""Logging set-up: text or JSON lines, and redaction of secrets that might slip into a message.

Secrets (DSN keys in `x-sentry-auth`, bearer tokens) are never logged on purpose; the redaction filter is
the safety net for the message of an exception raised by a library that quoted a header.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
from typing import Any

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging", "quoted", "redact"]

_SECRET_PATTERNS = [
    (re.compile(r"(sentry_(?:key|secret)\s*[=:]\s*)[^\s,&\"'}]+", re.IGNORECASE), r"\1[redacted]"),
    (re.compile(r"(Bearer\s+)[^\s,\"'}]+", re.IGNORECASE), r"\1[redacted]"),
    # Any other Authorization scheme: the rest of the value, up to a quote or the end of the line.
    (re.compile(r"(authorization['\"]?\s*[=:]\s*['\"]?)(?!\s*Bearer\b)[^\"'\n}]+", re.IGNORECASE), r"\1[redacted]"),
]

# Attributes every LogRecord has; anything else was passed through `extra=` and goes into JSON lines.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


#: Longest part of a client-supplied value (a service name, say) that goes into a log line.
MAX_LOGGED_VALUE_CHARS = 200


def quoted(value: str | None) -> str:
    """A client-supplied value for a log line: repr-escaped (one line, no control characters) and cut short."""
    if value is None:
        return "(missing or not a string)"
    return repr(value[:MAX_LOGGED_VALUE_CHARS]) + ("…" if len(value) > MAX_LOGGED_VALUE_CHARS else "")


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites the message (and exception text) of every record with secrets replaced by `[redacted]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value  # the filter sees only the message
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(*, log_format: str, level: str) -> None:
    """Send the root logger to stderr in `log_format` ("text" or "json") at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

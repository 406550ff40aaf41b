"""The report channel (SPEC §4): values forwarders hold and report in the `sentryroute-requests` ConfigMap.

Forwarders write these entries, so they are untrusted input: an entry whose key is not the hash of its own
attribute and value, or whose fields are not bounded strings, is ignored (and removed with the handled ones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from sentryroute.routes import report_key

MAX_ATTRIBUTE = 256
MAX_VALUE = 4096


@dataclass(frozen=True)
class Report:
    key: str
    attribute: str
    value: str
    reason: str


def parse_reports(data: Mapping[str, str] | None) -> tuple[list[Report], list[str]]:
    """(valid reports, keys of malformed entries) from the ConfigMap's data."""
    reports: list[Report] = []
    malformed: list[str] = []
    for key, raw in (data or {}).items():
        try:
            entry = json.loads(raw)
        except (TypeError, ValueError):
            entry = None
        if not isinstance(entry, dict):
            malformed.append(key)
            continue
        attribute, value, reason = entry.get("attribute"), entry.get("value"), entry.get("reason")
        if not (
            isinstance(attribute, str)
            and isinstance(value, str)
            and 0 < len(attribute) <= MAX_ATTRIBUTE
            and len(value) <= MAX_VALUE
            and report_key(attribute, value) == key
        ):
            malformed.append(key)
            continue
        reports.append(Report(key=key, attribute=attribute, value=value, reason=str(reason or "")[:64]))
    return reports, malformed

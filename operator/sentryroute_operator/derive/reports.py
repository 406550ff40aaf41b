"""The report channel (SPEC §4): values forwarders hold and report in the `sentryroute-requests` ConfigMap.

Forwarders write these entries, so they are untrusted input: an entry whose key is not the hash of its own
attribute and value, or whose fields are not bounded strings, is ignored (and removed with the handled ones).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from sentryroute.routes import report_key

MAX_ATTRIBUTE = 256
MAX_VALUE = 4096


@dataclass(frozen=True)
class Report:
    key: str
    attribute: str
    value: str
    reason: str
    namespace: str | None = None  # the namespace the forwarder determined (SPEC §4)
    namespace_from: str = "attribute"  # the forwarder's --namespace-from; older forwarders: attribute

    @property
    def scoped(self) -> bool:
        """Sent by a forwarder in `peer` mode: its value may only be provisioned for its own namespace."""
        return self.namespace_from == "peer"


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
        namespace = entry.get("namespace")
        if not (
            isinstance(attribute, str)
            and isinstance(value, str)
            and 0 < len(attribute) <= MAX_ATTRIBUTE
            and len(value) <= MAX_VALUE
            and (namespace is None or (isinstance(namespace, str) and 0 < len(namespace) <= 63))
            and report_key(attribute, value, namespace) == key
        ):
            malformed.append(key)
            continue
        namespace_from = "peer" if entry.get("namespaceFrom") == "peer" else "attribute"
        reports.append(
            Report(
                key=key,
                attribute=attribute,
                value=value,
                reason=str(reason or "")[:64],
                namespace=namespace,
                namespace_from=namespace_from,
            )
        )
    return reports, malformed


class ReportReason(StrEnum):
    """Why a forwarder holds a value (SPEC §4). `PROJECT_ID`, `UNAUTHORIZED`, `FORBIDDEN`: the table routes it,
    but Sentry refused the project — deleted, or its key revoked or rotated."""

    UNROUTED = "unrouted"
    PROJECT_ID = "project_id"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"

    @classmethod
    def of(cls, text: str) -> ReportReason | None:
        try:
            return cls(text)
        except ValueError:
            return None


#: Reasons that say Sentry refused a routed project: re-verify that project and its key at once.
REFUSED_BY_SENTRY = frozenset({ReportReason.PROJECT_ID, ReportReason.UNAUTHORIZED, ReportReason.FORBIDDEN})


@dataclass(frozen=True)
class IntakeUpdate:
    """What one new state of the report ConfigMap means: new reports, and whether it was deleted."""

    fresh: tuple[Report, ...] = ()
    deleted: bool = False

    @property
    def refused_values(self) -> set[tuple[str, str]]:
        """(attribute, value) of fresh reports where Sentry refused the routed project."""
        return {(r.attribute, r.value) for r in self.fresh if ReportReason.of(r.reason) in REFUSED_BY_SENTRY}


class ReportIntake:
    """The report ConfigMap as the operator last saw it, and which of its entries the operator removed."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.malformed: list[str] = []
        self._removing: set[str] = set()  # keys asked to be removed that are still present

    def update(self, data: Mapping[str, str] | None) -> IntakeUpdate:
        if data is None:  # deleted: the forwarders need it to report, so it must come back
            return IntakeUpdate(deleted=True)
        reports, malformed = parse_reports(data)
        known = {r.key: r.reason for r in self.reports}
        self.reports, self.malformed = reports, malformed
        self._removing &= {r.key for r in reports} | set(malformed)
        # A changed reason counts as fresh too: an unrouted value now refused by Sentry needs a re-check.
        return IntakeUpdate(fresh=tuple(r for r in reports if known.get(r.key) != r.reason))

    def removable(self, handled: Iterable[str]) -> list[str]:
        """Keys to remove from the ConfigMap: handled ones and malformed ones not already being removed."""
        return sorted((set(handled) | set(self.malformed)) - self._removing)

    def removed(self, keys: Iterable[str]) -> None:
        self._removing |= set(keys)

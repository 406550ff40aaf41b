"""The routes table contract (SPEC §3) and the slug function (SPEC §1), shared by operator and forwarder.

One module on purpose: the operator renders exactly what the forwarder parses, and a slug computed on
either side is the same on every machine and every restart.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "DERIVED_SLUG_RE",
    "MAX_REPORTED_ATTRIBUTE",
    "MAX_REPORTED_VALUE",
    "NAMESPACE_ATTRIBUTE",
    "NAMESPACE_FROM",
    "USER_SLUG_RE",
    "AutoCreate",
    "Fallback",
    "Pending",
    "ProjectEndpoint",
    "Refused",
    "Route",
    "RoutesTable",
    "RoutesTableError",
    "Truncation",
    "canonical_json",
    "compute_revision",
    "is_valid_user_slug",
    "parse_routes_table",
    "report_key",
    "slug",
]

SUPPORTED_MAJOR_VERSION = 1

#: A slug the operator derives (older self-hosted Sentry's 50-character limit).
DERIVED_SLUG_RE = re.compile(r"[a-z0-9_-]{1,50}")
#: A slug a user writes (`mapping`, `fallbackProject`): current Sentry's 100-character limit.
USER_SLUG_RE = re.compile(r"[a-z0-9_-]{1,100}")
_NOT_SLUG_CHARS = re.compile(r"[^a-z0-9_-]+")
_PUBLIC_KEY_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_PROJECT_ID_RE = re.compile(r"[0-9]{1,20}")

#: The resource attribute that names a resource's namespace (SPEC §3, §6.1).
NAMESPACE_ATTRIBUTE = "k8s.namespace.name"
#: Where a forwarder takes a resource's namespace from (`--namespace-from`, SPEC §6.1).
NAMESPACE_FROM = ("attribute", "peer")
#: Longest value / attribute name the forwarder reports (SPEC §4): a slug-sized limit, so a flood of long
#: hostile values can neither fill the report channel nor, through `refused`, the routes table.
MAX_REPORTED_VALUE = 100
MAX_REPORTED_ATTRIBUTE = 256


def canonical_json(obj: Any) -> str:
    """Keys sorted, no insignificant whitespace, UTF-8 (SPEC §1)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_size(obj: Any) -> int:
    """Bytes of `obj`'s canonical JSON: what an entry adds to a size-bounded document (ConfigMap, annotation)."""
    return len(canonical_json(obj).encode())


def slug(value: str) -> str:
    """Map any attribute value to a Sentry project slug, deterministically (SPEC §1).

    Values that already are valid slugs pass through; everything else is normalised and suffixed with a
    short hash of the original, so two different values never collide after normalisation.
    """
    if DERIVED_SLUG_RE.fullmatch(value) and not value.isdigit():
        return value
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii").lower()
    base = _NOT_SLUG_CHARS.sub("-", ascii_text).strip("-")
    if not base or base.isdigit():
        base = "p-" + base
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:6]
    return f"{base[:43]}-{digest}"


def is_valid_user_slug(value: str) -> bool:
    """True for a slug a user may write: `^[a-z0-9_-]{1,100}$` and not all digits."""
    return bool(USER_SLUG_RE.fullmatch(value)) and not value.isdigit()


def report_key(attribute: str, value: str, namespace: str | None = None) -> str:
    """Data key of a report-channel entry (SPEC §4): 16 hex characters of sha256(attribute NUL value), with
    NUL namespace appended when the forwarder determined one (the same value from two namespaces is two entries).
    """
    text = f"{attribute}\0{value}" if namespace is None else f"{attribute}\0{value}\0{namespace}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Model(BaseModel):
    # Unknown fields are ignored so that a newer operator never breaks an older forwarder.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Route(_Model):
    """A value routed to a project; `namespace` None: cluster-wide, else only that namespace's telemetry (§3).

    `exact` (an entry of a ClusterSentryRoute's namespaceSelector): only telemetry whose namespace is known to
    be `namespace`, also in `attribute` mode, where other namespaced routes also match telemetry of no namespace.
    """

    attribute: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=4096)
    namespace: str | None = Field(default=None, max_length=63)
    project: str = Field(min_length=1, max_length=512)
    exact: bool | None = None  # written only as true; absent (older tables, other routes): false


class ProjectEndpoint(_Model):
    id: str
    tracesUrl: str
    logsUrl: str
    publicKey: str

    @field_validator("id")
    @classmethod
    def _numeric_id(cls, v: str) -> str:
        if not _PROJECT_ID_RE.fullmatch(v):
            raise ValueError("project id must be a decimal number")
        return v

    @field_validator("publicKey")
    @classmethod
    def _plain_key(cls, v: str) -> str:
        # The key goes into an HTTP header: anything but alphanumerics could smuggle a header.
        if not _PUBLIC_KEY_RE.fullmatch(v):
            raise ValueError("publicKey must be 1-64 alphanumeric characters")
        return v

    @field_validator("tracesUrl", "logsUrl")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not (v.startswith("https://") or v.startswith("http://")) or any(c in v for c in " \r\n\t"):
            raise ValueError("ingest URLs must be absolute http(s) URLs")
        return v


class Pending(_Model):
    attribute: str
    value: str
    namespace: str | None = Field(default=None, max_length=63)  # None: cluster-wide (and in older tables)


class Fallback(_Model):
    attribute: str
    namespace: str | None = Field(default=None, max_length=63)
    project: str


class AutoCreate(_Model):
    attribute: str


class Refused(_Model):
    attribute: str
    value: str
    reason: str
    namespace: str | None = Field(default=None, max_length=63)  # None: cluster-wide (and in older tables)


class Truncation(_Model):
    """Present when the operator had to drop entries to keep the table under the ConfigMap limit (§3)."""

    droppedEntries: int = Field(ge=0)


class RoutesTable(_Model):
    """A parsed, validated routes table. Build one with :func:`parse_routes_table` or the constructor."""

    version: int | str = SUPPORTED_MAJOR_VERSION
    revision: str = ""
    routes: tuple[Route, ...] = ()
    projects: dict[str, ProjectEndpoint] = Field(default_factory=dict)
    pending: tuple[Pending, ...] = ()
    fallbacks: tuple[Fallback, ...] = ()
    unrouted: Literal["drop", "hold"] = "drop"
    autoCreate: AutoCreate | None = None
    refused: tuple[Refused, ...] = ()
    truncated: Truncation | None = None

    @field_validator("version")
    @classmethod
    def _major_one(cls, v: int | str) -> int | str:
        major = str(v).split(".", 1)[0]
        if major != str(SUPPORTED_MAJOR_VERSION):
            raise ValueError(f"unsupported routes table version {v!r} (this forwarder reads major version 1)")
        return v

    @model_validator(mode="after")
    def _projects_exist(self) -> RoutesTable:
        for where, project in [("route", r.project) for r in self.routes] + [
            ("fallback", f.project) for f in self.fallbacks
        ]:
            if project not in self.projects:
                raise ValueError(f"{where} names project {project!r}, which is not in 'projects'")
        return self

    def content(self) -> dict[str, Any]:
        """Every field but `revision`, as plain JSON data (what the revision hashes)."""
        data = self.model_dump(mode="json", exclude={"revision"}, exclude_none=True)
        return data

    def with_revision(self) -> RoutesTable:
        """This table with `revision` computed from its content."""
        return self.model_copy(update={"revision": compute_revision(self.content())})

    def to_json(self) -> str:
        """Canonical JSON of the whole table, revision included (what the operator writes)."""
        data = self.content()
        data["revision"] = self.revision or compute_revision(data)
        return canonical_json(data)


def compute_revision(content: dict[str, Any]) -> str:
    """`sha256:` of the canonical JSON of every field except `revision` (SPEC §3)."""
    body = {k: v for k, v in content.items() if k != "revision"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class RoutesTableError(ValueError):
    """A routes table that must not replace the last good one (malformed, wrong version, inconsistent)."""


def parse_routes_table(raw: bytes | str) -> RoutesTable:
    """Parse and validate routes.json; raise RoutesTableError with a one-line reason on any problem."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RoutesTableError(f"routes table is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RoutesTableError("routes table must be a JSON object")
    if "version" not in data:
        raise RoutesTableError("routes table has no 'version'")
    try:
        table = RoutesTable.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "table"
        raise RoutesTableError(f"routes table rejected at {loc}: {first['msg']}") from None
    if not table.revision:
        table = table.with_revision()
    return table

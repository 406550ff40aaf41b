"""The few fields of Sentry's project and client-key objects the operator relies on, parsed defensively.

Sentry's serializers return dozens of fields and add more over time; everything not listed here is ignored.
Items that lack a field we rely on are skipped by the caller (one odd project must not break a listing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PROJECT_ID_RE = re.compile(r"[0-9]{1,20}")


class MalformedItem(ValueError):
    """A list item without the fields we need; the API client logs it and skips it."""


@dataclass(frozen=True)
class SentryProject:
    id: str  # decimal string, as Sentry sends it
    slug: str
    name: str
    platform: str | None = None
    teams: tuple[str, ...] = ()  # team slugs
    status: str = "active"
    date_created: str = ""  # ISO 8601, as Sentry sends it

    @classmethod
    def from_json(cls, data: Any) -> SentryProject:
        if not isinstance(data, dict):
            raise MalformedItem("project is not an object")
        project_id = str(data.get("id", ""))
        slug = data.get("slug")
        if not _PROJECT_ID_RE.fullmatch(project_id) or not isinstance(slug, str) or not slug:
            raise MalformedItem("project without a numeric id or a slug")
        teams = tuple(
            t["slug"] for t in data.get("teams") or () if isinstance(t, dict) and isinstance(t.get("slug"), str)
        )
        if not teams and isinstance(data.get("team"), dict) and isinstance(data["team"].get("slug"), str):
            teams = (data["team"]["slug"],)
        platform = data.get("platform")
        return cls(
            id=project_id,
            slug=slug,
            name=str(data.get("name") or slug),
            platform=platform if isinstance(platform, str) else None,
            teams=teams,
            status=str(data.get("status") or "active"),
            date_created=str(data.get("dateCreated") or ""),
        )


@dataclass(frozen=True)
class SentryKey:
    public: str
    name: str
    is_active: bool
    date_created: str  # ISO 8601; compared as text, which orders correctly for Sentry's UTC `Z` format
    dsn_public: str
    otlp_traces: str | None = None
    otlp_logs: str | None = None
    project_id: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> SentryKey:
        if not isinstance(data, dict):
            raise MalformedItem("key is not an object")
        dsn: dict[str, Any] = data["dsn"] if isinstance(data.get("dsn"), dict) else {}
        public, dsn_public = data.get("public"), dsn.get("public")
        if not isinstance(public, str) or not public or not isinstance(dsn_public, str) or not dsn_public:
            raise MalformedItem("key without a public key or dsn.public")
        project_id = data.get("projectId")
        return cls(
            public=public,
            name=str(data.get("name") or data.get("label") or ""),
            is_active=data.get("isActive") is True,
            date_created=str(data.get("dateCreated") or ""),
            dsn_public=dsn_public,
            otlp_traces=_optional_str(dsn.get("otlp_traces")),
            otlp_logs=_optional_str(dsn.get("otlp_logs")),
            project_id=None if project_id is None else str(project_id),
        )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

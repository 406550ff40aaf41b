"""Where a slug becomes part of a Web API URL: validated first, then escaped as exactly one path segment.

The upstream exporter interpolated `service.name` raw into `/api/0/projects/{org}/{slug}/keys/` with the
org token attached (CVE-2026-47256): `foo?x=` or `../../members` reached other endpoints. Both defences
apply here, on every call: a slug that fails validation never produces a request at all.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from sentryroute.routes import is_valid_user_slug

from .errors import InvalidSlug

# Sentry's org slug rule, without the look-arounds: checked in code below.
_ORG_SLUG_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-]{0,99}")


def is_valid_org_slug(value: str) -> bool:
    """Sentry's org slug: alphanumerics and inner hyphens, not all digits, at most 100 characters."""
    return bool(_ORG_SLUG_RE.fullmatch(value)) and not value.endswith("-") and not value.isdigit()


def checked_slug(value: object, *, what: str) -> str:
    """Return `value` if it is a valid project/team slug, else raise InvalidSlug (the value is shown escaped)."""
    if not isinstance(value, str) or not is_valid_user_slug(value):
        raise InvalidSlug(
            f"invalid {what} slug {ascii(value)[:120]}: must match ^[a-z0-9_-]{{1,100}}$ and not be all digits"
        )
    return value


def checked_org(value: object) -> str:
    if not isinstance(value, str) or not is_valid_org_slug(value):
        raise InvalidSlug(f"invalid organization slug {ascii(value)[:120]}")
    return value


def segment(value: str) -> str:
    """Percent-escape `value` as ONE path segment: `/`, `?`, `#`, `%` and `.` sequences cannot escape it."""
    escaped = quote(value, safe="")
    # "." and ".." are legal slugs for no one, but escape them anyway so no URL normaliser collapses them.
    return escaped.replace(".", "%2E") if escaped in (".", "..") else escaped


def api_path(*parts: str) -> str:
    """`/api/0/<seg>/<seg>/…/` from literal parts and already-validated slugs, each escaped as one segment."""
    return "/api/0/" + "".join(segment(p) + "/" for p in parts)

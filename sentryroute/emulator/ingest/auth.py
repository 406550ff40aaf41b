"""Relay's ingest authentication: a public key from `X-Sentry-Auth`, `Authorization: Sentry …` or `?sentry_key=`."""

from __future__ import annotations

import re
from collections.abc import Mapping

_PUBLIC_KEY_RE = re.compile(r"[0-9a-f]{32}")


class IngestAuthError(Exception):
    """Maps to Relay's BadEventMeta: `status` 401 (auth) or 400 (malformed key)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _key_from_header(value: str) -> str:
    """`Sentry sentry_key=<pub>, sentry_version=7, sentry_client=…` → `<pub>` (prefix case-insensitive)."""
    scheme, _, params = value.strip().partition(" ")
    if scheme.lower() != "sentry":
        raise IngestAuthError(401, "bad x-sentry-auth header")
    pairs = dict(part.strip().partition("=")[::2] for part in params.split(",") if part.strip())
    key = pairs.get("sentry_key", "").strip()
    if not key:
        raise IngestAuthError(401, "missing authorization information")
    return key


def public_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The one public key the request carries; more than one source is an error, as in Relay."""
    sources = []
    if "x-sentry-auth" in headers:
        sources.append(_key_from_header(headers["x-sentry-auth"]))
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("sentry "):
        sources.append(_key_from_header(authorization))
    if "sentry_key" in query:
        sources.append(query["sentry_key"])
    if not sources:
        raise IngestAuthError(401, "missing authorization information")
    if len(sources) > 1:
        raise IngestAuthError(401, "multiple authorization payloads detected")
    key = sources[0].strip()
    if not _PUBLIC_KEY_RE.fullmatch(key):
        raise IngestAuthError(400, "bad project key: invalid public key")
    return key

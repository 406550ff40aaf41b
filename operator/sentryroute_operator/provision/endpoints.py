"""From a project and its client keys to the ingest endpoint the forwarder exports to (SPEC §3, §5).

Two fixes over the upstream exporter: `dsn.otlp_traces`/`dsn.otlp_logs` are used when Sentry returns them,
and the URL derived from `dsn.public` keeps the port and path prefix (self-hosted Sentry under a sub-path
on a non-default port). Whatever the source, the URL must stay on the DSN's host and must not downgrade
to plain http unless the connection itself is plain http: the forwarder sends data wherever we point it.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from pydantic import ValidationError

from sentryroute.routes import ProjectEndpoint

from .errors import EndpointError
from .models import SentryKey, SentryProject

__all__ = ["PREFERRED_KEY_NAME", "choose_key", "ingest_endpoint"]

#: Name of the key an admin can create to pin which key the forwarder uses.
PREFERRED_KEY_NAME = "sentryroute"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def choose_key(keys: list[SentryKey]) -> SentryKey | None:
    """The active key named `sentryroute`, else the oldest active key; None when no key is active.

    "Oldest" is by `dateCreated`, ties broken by Sentry's own order (newest first), so the choice is the
    same on every call and after a restart, and creating a new key never moves existing routes.
    """
    oldest_first = [k for k in reversed(keys) if k.is_active]
    preferred = [k for k in oldest_first if k.name == PREFERRED_KEY_NAME]
    candidates = preferred or oldest_first
    if not candidates:
        return None
    # `min` keeps the first of equal elements: Sentry's order decides ties. Missing dates sort last.
    return min(candidates, key=lambda k: (k.date_created == "", k.date_created))


def ingest_endpoint(project: SentryProject, key: SentryKey, *, connection_url: str) -> ProjectEndpoint:
    """The OTLP traces/logs URLs and public key for `project`; raises EndpointError on anything unsafe."""
    allowed = {"https", "http"} if urlsplit(connection_url).scheme == "http" else {"https"}
    dsn = urlsplit(key.dsn_public)
    where = f"key {key.public[:8]}… of project {project.slug}"
    if dsn.scheme not in allowed:
        raise EndpointError(f"{where}: DSN scheme {dsn.scheme!r} is not allowed for connection {connection_url}")
    if not dsn.hostname or not dsn.username:
        raise EndpointError(f"{where}: DSN has no host or no public key")
    _host_port(dsn)  # rejects an unparsable port before it reaches a URL
    prefix, _, dsn_project_id = dsn.path.rstrip("/").rpartition("/")
    if dsn_project_id != project.id or (key.project_id is not None and key.project_id != project.id):
        raise EndpointError(f"{where}: DSN names project {dsn_project_id!r}, not {project.id}")
    base = f"{dsn.scheme}://{_netloc(dsn)}{prefix}/api/{project.id}/integration/otlp/v1"
    traces = _checked(key.otlp_traces, dsn=dsn, allowed=allowed, where=where) or f"{base}/traces/"
    logs = _checked(key.otlp_logs, dsn=dsn, allowed=allowed, where=where) or f"{base}/logs/"
    try:
        return ProjectEndpoint(id=project.id, tracesUrl=traces, logsUrl=logs, publicKey=key.public)
    except ValidationError as exc:
        raise EndpointError(f"{where}: {exc.errors()[0]['msg']}") from None


def _checked(url: str | None, *, dsn: SplitResult, allowed: set[str], where: str) -> str | None:
    """A Sentry-given OTLP URL, if it is on the DSN's host and port with an allowed scheme."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in allowed:
        raise EndpointError(f"{where}: OTLP URL scheme {parts.scheme!r} is not allowed")
    if parts.username or parts.password or _host_port(parts) != _host_port(dsn):
        raise EndpointError(f"{where}: OTLP URL host {parts.hostname!r} differs from the DSN host {dsn.hostname!r}")
    return url


def _netloc(parts: SplitResult) -> str:
    """host[:port] without the userinfo (the public key belongs in a header, not in the URL)."""
    return parts.netloc.rpartition("@")[2]


def _host_port(parts: SplitResult) -> tuple[str, int | None]:
    try:
        port = parts.port
    except ValueError:
        raise EndpointError(f"URL {parts.geturl()[:200]!r} has an invalid port") from None
    return ((parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(parts.scheme))

"""Named Sentry connections (SPEC §5): which Sentry, which org, where its token lives, who may use it.

Read once at start-up from the `--connections` YAML file (mounted from Helm values), or, without a file,
from `SENTRY_URL` / `SENTRY_ORG_SLUG` / `SENTRY_AUTH_TOKEN` / `SENTRY_AUTH_TOKEN_FILE` as the connection
`default`. Every problem is reported with the field that caused it, so a typo fails the rollout instead
of failing every SentryRoute later.

`allowedNamespaces`: omitted means every namespace may use the connection (the common one-org cluster);
entries are namespace names or shell-style patterns (`team-*`). An explicit empty list is rejected as
ambiguous. A SentryRoute names its connection in `spec.connection` (default `default`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import yaml

from sentryroute_operator.provision.errors import TokenError
from sentryroute_operator.provision.paths import is_valid_org_slug
from sentryroute_operator.provision.tokens import (
    FileToken,
    Secret,
    SecretReader,
    SecretToken,
    StaticToken,
    TokenSource,
    checked_token,
)

__all__ = [
    "DEFAULT_CONNECTION",
    "Connection",
    "ConnectionsError",
    "FileToken",
    "SecretToken",
    "StaticToken",
    "TokenSource",
    "connection_allows",
    "load_connections",
    "token_source",
]

DEFAULT_CONNECTION = "default"
DEFAULT_SENTRY_URL = "https://sentry.io"
DEFAULT_SECRET_KEY = "token"

_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SECRET_NAME_RE = re.compile(r"[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?")
_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]{1,253}")
_NAMESPACE_PATTERN_RE = re.compile(r"[a-z0-9*?][-a-z0-9*?]{0,62}")
_FIELDS = {"name", "url", "orgSlug", "tokenSecret", "tokenFile", "allowedNamespaces"}


class ConnectionsError(ValueError):
    """The connections configuration is invalid; the message names the file, entry and field."""


@dataclass(frozen=True)
class Connection:
    name: str
    url: str  # Sentry's base URL, e.g. https://sentry.io or http://sentry.local:9000/sentry
    org_slug: str
    token_secret: str | None = None  # Secret name in the operator's namespace
    token_file: str | None = None
    allowed_namespaces: tuple[str, ...] = ()  # empty: every namespace
    token_secret_key: str = DEFAULT_SECRET_KEY  # data key inside `token_secret`
    token: Secret | None = field(default=None, repr=False, compare=False)  # only from env SENTRY_AUTH_TOKEN


def connection_allows(conn: Connection, namespace: str) -> bool:
    """May a SentryRoute in `namespace` use `conn`?"""
    return not conn.allowed_namespaces or any(fnmatchcase(namespace, p) for p in conn.allowed_namespaces)


def token_source(
    conn: Connection, *, read_secret: SecretReader | None = None, namespace: str | None = None
) -> TokenSource:
    """The TokenSource for `conn`. A Secret-backed connection needs a Secret reader and the own namespace."""
    if conn.token is not None:
        return StaticToken(conn.token)
    if conn.token_file is not None:
        return FileToken(conn.token_file)
    if conn.token_secret is not None and read_secret is not None and namespace:
        return SecretToken(read_secret, namespace, conn.token_secret, conn.token_secret_key)
    raise ConnectionsError(
        f"connection {conn.name!r}: its token Secret needs a Kubernetes client and the operator namespace"
    )


def load_connections(path: str | None, env: Mapping[str, str]) -> dict[str, Connection]:
    """Connections from the YAML file at `path`, else the `default` connection from `env` (may be empty)."""
    if path:
        return _from_file(path)
    conn = _from_env(env)
    return {conn.name: conn} if conn else {}


def _from_file(path: str) -> dict[str, Connection]:
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except OSError as exc:
        raise ConnectionsError(f"connections file {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConnectionsError(f"connections file {path}: not valid YAML{where}") from None
    if not isinstance(document, dict) or not isinstance(document.get("connections"), list):
        raise ConnectionsError(f"connections file {path}: expected a mapping with a 'connections' list")
    unknown = sorted(set(document) - {"connections"})
    if unknown:
        raise ConnectionsError(f"connections file {path}: unknown top-level field {unknown[0]!r}")
    connections: dict[str, Connection] = {}
    for index, entry in enumerate(document["connections"]):
        conn = _parse_entry(entry, where=f"connections file {path}: connections[{index}]")
        if conn.name in connections:
            raise ConnectionsError(f"connections file {path}: connections[{index}].name {conn.name!r} is used twice")
        connections[conn.name] = conn
    return connections


def _parse_entry(entry: Any, *, where: str) -> Connection:
    if not isinstance(entry, dict):
        raise ConnectionsError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ConnectionsError(f"{where}: unknown field {str(unknown[0])!r} (known: {', '.join(sorted(_FIELDS))})")
    name = _required_str(entry, "name", where=where)
    if not _NAME_RE.fullmatch(name):
        raise ConnectionsError(f"{where}.name: {name!r} must be a DNS label (lowercase letters, digits, '-')")
    where = f"{where} ({name})"
    url = _checked_url(_required_str(entry, "url", where=where), where=f"{where}.url")
    org = _checked_org(_required_str(entry, "orgSlug", where=where), where=f"{where}.orgSlug")
    secret_name, secret_key = _token_secret(entry.get("tokenSecret"), where=f"{where}.tokenSecret")
    token_file = entry.get("tokenFile")
    if token_file is not None and (not isinstance(token_file, str) or not token_file.strip()):
        raise ConnectionsError(f"{where}.tokenFile: must be a non-empty path")
    if (secret_name is None) == (token_file is None):
        raise ConnectionsError(f"{where}: set exactly one of tokenSecret and tokenFile")
    return Connection(
        name=name,
        url=url,
        org_slug=org,
        token_secret=secret_name,
        token_file=token_file,
        allowed_namespaces=_allowed(entry, where=f"{where}.allowedNamespaces"),
        token_secret_key=secret_key,
    )


def _from_env(env: Mapping[str, str]) -> Connection | None:
    names = ("SENTRY_URL", "SENTRY_ORG_SLUG", "SENTRY_AUTH_TOKEN", "SENTRY_AUTH_TOKEN_FILE")
    if not any(env.get(n) for n in names):
        return None
    org = env.get("SENTRY_ORG_SLUG", "")
    if not org:
        raise ConnectionsError("SENTRY_ORG_SLUG is required for the default connection (no --connections file)")
    url = _checked_url(env.get("SENTRY_URL") or DEFAULT_SENTRY_URL, where="SENTRY_URL")
    org = _checked_org(org, where="SENTRY_ORG_SLUG")
    raw_token, token_file = env.get("SENTRY_AUTH_TOKEN"), env.get("SENTRY_AUTH_TOKEN_FILE")
    if bool(raw_token) == bool(token_file):
        raise ConnectionsError("set exactly one of SENTRY_AUTH_TOKEN and SENTRY_AUTH_TOKEN_FILE")
    try:
        token = checked_token(raw_token, source="SENTRY_AUTH_TOKEN") if raw_token else None
    except TokenError as exc:
        raise ConnectionsError(str(exc)) from None
    return Connection(name=DEFAULT_CONNECTION, url=url, org_slug=org, token_file=token_file or None, token=token)


def _required_str(entry: dict[str, Any], key: str, *, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConnectionsError(f"{where}.{key}: required, a non-empty string")
    return value.strip()


def _checked_url(url: str, *, where: str) -> str:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ConnectionsError(f"{where}: {url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionsError(f"{where}: {url!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConnectionsError(f"{where}: must not carry credentials, a query or a fragment")
    return url.rstrip("/")


def _checked_org(org: str, *, where: str) -> str:
    if not is_valid_org_slug(org):
        raise ConnectionsError(f"{where}: {org!r} is not a Sentry organization slug (letters, digits, inner '-')")
    return org


def _token_secret(value: Any, *, where: str) -> tuple[str | None, str]:
    if value is None:
        return None, DEFAULT_SECRET_KEY
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or set(value) - {"name", "key"}:
        raise ConnectionsError(f"{where}: expected {{name, key}}")
    name, key = value.get("name"), value.get("key", DEFAULT_SECRET_KEY)
    if not isinstance(name, str) or not _SECRET_NAME_RE.fullmatch(name):
        raise ConnectionsError(f"{where}.name: {name!r} is not a Secret name")
    if not isinstance(key, str) or not _SECRET_KEY_RE.fullmatch(key):
        raise ConnectionsError(f"{where}.key: {key!r} is not a Secret data key")
    return name, key


def _allowed(entry: dict[str, Any], *, where: str) -> tuple[str, ...]:
    if "allowedNamespaces" not in entry:
        return ()
    value = entry["allowedNamespaces"]
    if not isinstance(value, list) or not value:
        raise ConnectionsError(
            f"{where}: a non-empty list of namespaces or patterns (omit it to allow every namespace)"
        )
    for item in value:
        if not isinstance(item, str) or not _NAMESPACE_PATTERN_RE.fullmatch(item):
            raise ConnectionsError(f"{where}: {item!r} is not a namespace name or pattern")
    return tuple(value)

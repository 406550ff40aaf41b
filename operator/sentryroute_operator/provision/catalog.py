"""One Sentry connection at run time: its API client and its org's project listing (the catalog).

The catalog is listed once per re-verification interval and shared by every route of the connection, so
adopting N existing projects costs one paginated listing instead of N lookups. A failed listing keeps the
previous catalog (a transient error is never "no projects").
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..connections import Connection
from .api import SentryApi
from .errors import AuthError, TransientError
from .models import SentryProject

log = logging.getLogger(__name__)


class ConnectionRuntime:
    def __init__(self, connection: Connection, api: SentryApi, *, key_prefix: str, max_age: float) -> None:
        self.connection = connection
        self.api = api
        self.key_prefix = key_prefix  # "org/" or "connection:org/" when two connections share an org slug
        self.max_age = max_age
        self.catalog: dict[str, SentryProject] | None = None
        self.listed_at: float | None = None
        self.auth_problem: AuthError | None = None
        self._lock = asyncio.Lock()

    def project_key(self, slug: str) -> str:
        return self.key_prefix + slug

    def invalidate(self) -> None:
        self.listed_at = None

    async def refresh(self) -> dict[str, SentryProject] | None:
        """The catalog, re-listed when older than `max_age`; on failure the previous one (maybe None)."""
        async with self._lock:
            if self.listed_at is not None and time.monotonic() - self.listed_at < self.max_age:
                return self.catalog
            try:
                projects = await self.api.list_projects()
            except TransientError as exc:
                log.warning("Listing projects of connection %s failed, keeping the previous list: %s", self.name, exc)
                return self.catalog
            except AuthError as exc:
                self.auth_problem = exc
                log.warning("Listing projects of connection %s: %s", self.name, exc)
                return self.catalog
            self.auth_problem = None
            self.catalog = {p.slug: p for p in projects}
            self.listed_at = time.monotonic()
            return self.catalog

    @property
    def name(self) -> str:
        return self.connection.name

    @property
    def listed(self) -> bool:
        return self.catalog is not None

"""aiohttp client of Sentry's Web API: the six calls the operator makes, with Sentry's own conventions.

Bearer auth with one re-read of the token on 401; every slug validated and escaped as one path segment;
`Link` pagination on every list; 429 waits on a per-client gate; 5xx and network errors retried with
jittered backoff and then reported as `TransientError` — never as "missing" (docs/sentry-facts.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from ..metrics import SENTRY_API_RATE_LIMITED_SECONDS, SENTRY_API_RESPONSES
from .errors import AuthError, NotFound, RateLimited, SentryApiError, SlugConflict, TransientError
from .models import MalformedItem, SentryKey, SentryProject
from .pagination import MAX_PAGES, next_cursor
from .paths import api_path, checked_org, checked_slug
from .ratelimit import RateLimitGate, rate_limit_wait
from .tokens import Secret, TokenSource

__all__ = ["SentryApi"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_DETAIL_LIMIT = 300
_MIN_RATE_LIMIT_WAIT = 0.1
_MAX_BODY = 32 << 20  # a page of 100 projects is ~100 KiB; anything near this is not Sentry talking


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class SentryApi:
    """One org on one Sentry instance. Share one instance between concurrent tasks: the 429 gate is per client."""

    def __init__(
        self,
        *,
        base_url: str,
        org: str,
        token: TokenSource,
        session: aiohttp.ClientSession | None = None,
        max_rate_limit_wait: float = 600.0,
        retries: int = 5,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("base_url must be an http(s) URL without query or fragment, e.g. https://sentry.io")
        self.base_url = base_url.rstrip("/")
        self.org = checked_org(org)
        self._token = token
        self._session = session
        self._owns_session = session is None
        self.max_rate_limit_wait = max_rate_limit_wait
        self.retries = retries
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._gate = RateLimitGate()
        self._last_token: Secret | None = None  # only to scrub it from error details
        self._lost_creates: dict[str, float] = {}  # slug → epoch time of a create whose answers were all lost

    def __repr__(self) -> str:
        return f"SentryApi(base_url={self.base_url!r}, org={self.org!r})"

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> SentryApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- the calls ---------------------------------------------------------------------------------------

    async def list_projects(self) -> list[SentryProject]:
        """Every active project of the org, all pages."""
        path = api_path("organizations", self.org, "projects")
        items = await self._list(path, what="list projects", scope="org:read")
        return _parse_items(items, SentryProject.from_json, what=f"project of org {self.org}")

    async def find_project(self, slug: str) -> SentryProject | None:
        """The active project `slug`, or None when Sentry says it does not exist (404). Errors raise."""
        slug = checked_slug(slug, what="project")
        path = api_path("projects", self.org, slug)
        response = await self._request("GET", path)
        if response.status == 404:
            return None
        data = self._ok_json(response, what=f"get project {slug}", scope="project:read")
        try:
            project = SentryProject.from_json(data)
        except MalformedItem as exc:
            raise SentryApiError(f"unexpected project body for {self.org}/{slug}: {exc}") from None
        if project.status != "active":
            return None
        if project.slug != slug:
            # Sentry serves a renamed project under its old slug; adopting it under the old name would lie.
            raise SentryApiError(f"project {self.org}/{slug} answered as {project.slug!r} (renamed?)", status=200)
        return project

    async def create_project(self, *, team: str, slug: str, name: str, platform: str) -> SentryProject:
        """Create `slug` under `team` with default alert rules off. Raises SlugConflict on 409."""
        team = checked_slug(team, what="team")
        slug = checked_slug(slug, what="project")
        body = {"name": name[:50], "slug": slug, "platform": platform, "default_rules": False}
        path = api_path("teams", self.org, team, "projects")
        what = f"create project {slug} under team {team}"
        attempts: list[str] = []
        sent_at = time.time()
        try:
            response = await self._request("POST", path, body=body, failed_attempts=attempts)
        except TransientError:
            if attempts:  # an attempt may have created it: a later adopt checks its creation time against this
                self._lost_creates[slug] = sent_at
            raise
        if response.status == 409:
            raise SlugConflict(
                f"{what}: the slug is taken in org {self.org}",
                status=409,
                detail=self._detail(response),
                lost_answer=attempts[0] if attempts else None,
                sent_at=sent_at,
            )
        data = self._ok_json(response, what=what, scope="project:write")
        try:
            return SentryProject.from_json(data)
        except MalformedItem as exc:
            raise SentryApiError(f"unexpected body after {what}: {exc}", status=response.status) from None

    def lost_create(self, slug: str) -> float | None:
        """When a create of `slug` was sent whose every attempt went unanswered (it may have succeeded); forgets it."""
        return self._lost_creates.pop(slug, None)

    async def delete_project(self, slug: str) -> None:
        """Delete `slug` (Sentry schedules it; the slug stays reserved for a while). A 404 counts as done."""
        slug = checked_slug(slug, what="project")
        response = await self._request("DELETE", api_path("projects", self.org, slug))
        if response.status != 404:
            self._check(response, what=f"delete project {slug}", scope="project:admin")

    async def list_keys(self, project_slug: str) -> list[SentryKey]:
        """Every client key of the project (active or not), all pages, in Sentry's order (newest first)."""
        slug = checked_slug(project_slug, what="project")
        path = api_path("projects", self.org, slug, "keys")
        items = await self._list(path, what=f"list keys of project {slug}", scope="project:read")
        return _parse_items(items, SentryKey.from_json, what=f"key of project {self.org}/{slug}")

    async def list_org_keys(self) -> dict[str, list[SentryKey]]:
        """Every client key of every active project, all pages, grouped by project id (one listing, not N).

        Keys without a `projectId` are skipped; pass the result to `ensure_project(keys=...)`.
        """
        path = api_path("organizations", self.org, "project-keys")
        items = await self._list(path, what="list the org's project keys", scope="org:read")
        grouped: dict[str, list[SentryKey]] = {}
        for key in _parse_items(items, SentryKey.from_json, what=f"key of org {self.org}"):
            if key.project_id is not None:
                grouped.setdefault(key.project_id, []).append(key)
        return grouped

    async def list_teams(self) -> list[str]:
        """Slugs of every team of the org, all pages."""
        items = await self._list(api_path("organizations", self.org, "teams"), what="list teams", scope="org:read")
        return [i["slug"] for i in items if isinstance(i, dict) and isinstance(i.get("slug"), str)]

    # --- the machinery -----------------------------------------------------------------------------------

    async def _list(self, path: str, *, what: str, scope: str) -> list[Any]:
        """Concatenate every page: follow `rel="next"` while `results="true"`, using only the Link's cursor."""
        items: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            response = await self._request("GET", path, cursor=cursor)
            page = self._ok_json(response, what=what, scope=scope)
            if not isinstance(page, list):
                raise SentryApiError(f"{what}: expected a JSON list, got {type(page).__name__}", status=response.status)
            items.extend(page)
            cursor = next_cursor(response.headers.get("Link"))
            if cursor is None:
                return items
            if cursor in seen:
                raise SentryApiError(f"{what}: the server repeated cursor {cursor!r}; refusing to loop")
            seen.add(cursor)
        raise SentryApiError(f"{what}: more than {MAX_PAGES} pages")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        cursor: str | None = None,
        failed_attempts: list[str] | None = None,
    ) -> _Response:
        """Send once, then handle 401 (one token refresh), 429 (gate) and 5xx/network (backoff) by resending.

        `failed_attempts` collects the problem of every attempt whose outcome is unknown (5xx, network error):
        such an attempt may have been carried out, which matters for a create that is then answered 409.
        """
        query = "" if cursor is None else "?cursor=" + quote(cursor, safe=":")
        url = URL(self.base_url + path + query, encoded=True)
        rate_limit_deadline: float | None = None  # set by the first 429: the budget of this call
        refreshed = False
        failures = 0
        while True:
            await self._gate.wait()
            token = await self._token.get()
            self._last_token = Secret(token)
            try:
                response = await self._send(method, url, token=token, body=body)
            except (TimeoutError, aiohttp.ClientError) as exc:
                SENTRY_API_RESPONSES.labels(self.org, "none").inc()
                problem = f"{type(exc).__name__}: {_clean(str(exc)) or 'no detail'}"
                if failed_attempts is not None:
                    failed_attempts.append(problem)
                failures = await self._backoff_or_raise(failures, method=method, path=path, problem=problem)
                continue
            SENTRY_API_RESPONSES.labels(self.org, str(response.status)).inc()
            if response.status == 401 and not refreshed:
                refreshed = True
                await self._token.refresh()
                continue
            if response.status == 429:
                now = time.monotonic()
                if rate_limit_deadline is None:
                    rate_limit_deadline = now + self.max_rate_limit_wait
                if now >= rate_limit_deadline:
                    raise RateLimited(
                        f"{method} {path}: still rate limited after waiting {self.max_rate_limit_wait:g}s",
                        status=429,
                        detail=self._detail(response),
                    )
                wait = rate_limit_wait(response.headers, max_wait=rate_limit_deadline - now)
                wait = max(wait, min(_MIN_RATE_LIMIT_WAIT, rate_limit_deadline - now))  # a past reset must not spin
                log.warning("Sentry rate limit on %s %s (org %s): waiting %.1fs", method, path, self.org, wait)
                SENTRY_API_RATE_LIMITED_SECONDS.labels(self.org).inc(wait)
                self._gate.block_for(wait)
                continue
            if response.status >= 500:
                problem = f"HTTP {response.status}: {self._detail(response)}"
                if failed_attempts is not None:
                    failed_attempts.append(problem)
                failures = await self._backoff_or_raise(failures, method=method, path=path, problem=problem)
                continue
            return response

    async def _send(self, method: str, url: URL, *, token: str, body: Any) -> _Response:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "sentryroute"}
        async with self._session.request(
            method, url, headers=headers, json=body, allow_redirects=False, timeout=self._timeout
        ) as resp:
            received = bytearray()
            async for chunk in resp.content.iter_chunked(1 << 16):
                received += chunk
                if len(received) > _MAX_BODY:
                    raise SentryApiError(f"{method} {url.path}: response larger than {_MAX_BODY} bytes")
            return _Response(status=resp.status, headers=resp.headers.copy(), body=bytes(received))

    async def _backoff_or_raise(self, failures: int, *, method: str, path: str, problem: str) -> int:
        if failures >= self.retries:
            raise TransientError(f"{method} {path} failed after {failures + 1} attempts: {problem}")
        delay = min(self.retry_max, self.retry_initial * 2**failures) * random.uniform(0.5, 1.0)
        log.info("Sentry %s %s (org %s) failed (%s); retrying in %.2fs", method, path, self.org, problem, delay)
        await asyncio.sleep(delay)
        return failures + 1

    def _ok_json(self, response: _Response, *, what: str, scope: str) -> Any:
        self._check(response, what=what, scope=scope)
        data = response.json()
        if data is None:
            raise SentryApiError(f"{what}: the response is not JSON", status=response.status)
        return data

    def _check(self, response: _Response, *, what: str, scope: str) -> None:
        """Raise the error class that tells the caller what to do; return on 2xx."""
        status = response.status
        if 200 <= status < 300:
            return
        detail = self._detail(response)
        where = f"Sentry org {self.org!r} at {self.base_url}"
        if status == 401:
            raise AuthError(
                f"{what}: {where} rejected the auth token (401, {detail}); it needs a valid token with scope {scope}",
                status=status,
                detail=detail,
                missing_scope=scope,
            )
        if status == 403:
            raise AuthError(
                f"{what}: {where} refused (403, {detail}); the token needs the {scope} scope",
                status=status,
                detail=detail,
                missing_scope=scope,
            )
        if status == 404:
            raise NotFound(f"{what}: not found in {where} ({detail})", status=status, detail=detail)
        if status == 409:
            raise SlugConflict(f"{what}: conflict ({detail})", status=status, detail=detail)
        raise SentryApiError(f"{what}: HTTP {status} from {where} ({detail})", status=status, detail=detail)

    def _detail(self, response: _Response) -> str:
        """Sentry's `detail` (or field errors) as one short, printable line with the token scrubbed."""
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("detail"), str):
            text = data["detail"]
        elif data is not None:
            text = json.dumps(data, ensure_ascii=True)
        else:
            text = response.body[:_DETAIL_LIMIT].decode("utf-8", "replace")
        return _clean(self._scrub(text))[:_DETAIL_LIMIT] or "no detail"

    def _scrub(self, text: str) -> str:
        # A server (or a proxy) echoing the Authorization header must not carry the token into our logs.
        if self._last_token is not None:
            text = text.replace(self._last_token.reveal(), "***")
        return text


def _clean(text: str) -> str:
    return _CONTROL_RE.sub(" ", text).strip()


def _parse_items(items: list[Any], parse: Callable[[Any], _T], *, what: str) -> list[_T]:
    """Parse list items, skipping (and logging) malformed ones so one odd item never hides the others."""
    parsed: list[_T] = []
    for item in items:
        try:
            parsed.append(parse(item))
        except MalformedItem as exc:
            log.warning("Skipping a malformed %s: %s", what, exc)
    return parsed

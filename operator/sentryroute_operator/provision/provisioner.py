"""One attribute value → one Sentry project with an ingest endpoint: adopt, or create, then read its keys.

The operator calls `ensure_project` per value and turns the result into a status entry and a routes-table
entry. Everything that is a definite answer becomes a `Provisioned` (Ready, Creating or Failed with a
reason); only `TransientError` propagates, so the caller keeps the previous entry instead of deciding a
project is gone because Sentry had a bad minute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sentryroute.routes import ProjectEndpoint, is_valid_user_slug

from ..timestamps import parse_rfc3339
from .api import SentryApi
from .endpoints import choose_key, ingest_endpoint
from .errors import AuthError, EndpointError, InvalidSlug, NotFound, SentryApiError, SlugConflict, TransientError
from .models import SentryKey, SentryProject
from .paths import checked_slug

__all__ = ["DEFINITIVE_FAILURES", "ProjectState", "Provisioned", "Reason", "ensure_project", "project_name"]

log = logging.getLogger(__name__)


class ProjectState(StrEnum):
    """A value's `status.projects[].state` (SPEC §2); a `str`, so it serialises as its value."""

    READY = "Ready"
    CREATING = "Creating"
    FAILED = "Failed"
    CONFLICT = "Conflict"


class Reason(StrEnum):
    """Why a value is in its state: the `reason` of a `Provisioned` and of status entries and Events."""

    CREATED = "Created"
    ADOPTED = "Adopted"
    NO_ACTIVE_KEY = "NoActiveKey"
    KEYS_UNAVAILABLE = "KeysUnavailable"
    NOT_FOUND = "NotFound"
    NO_TEAM = "NoTeam"
    TEAM_NOT_FOUND = "TeamNotFound"
    SLUG_RESERVED = "SlugReserved"
    REJECTED = "Rejected"
    INVALID_SLUG = "InvalidSlug"
    INVALID_DSN = "InvalidDsn"
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    API_ERROR = "ApiError"
    PROJECT_GONE = "ProjectGone"  # an adopted project disappeared from Sentry (never re-created)
    CONFLICT = "Conflict"


#: Failure reasons that say something about the project itself; other failures (auth, API errors) keep the
#: last good table entry, because the project and its key most likely still work.
#: `ProjectGone` is not one of them: an adopted project deleted in Sentry stays routed, so the forwarders hold its
#: data (and drop it, counted, when the hold expires) instead of treating the value as unrouted.
DEFINITIVE_FAILURES = frozenset(
    {
        Reason.NOT_FOUND,
        Reason.SLUG_RESERVED,
        Reason.NO_ACTIVE_KEY,
        Reason.INVALID_DSN,
        Reason.INVALID_SLUG,
        Reason.NO_TEAM,
    }
)
_NAME_LIMIT = 50  # Sentry's serializer limit for project names


@dataclass(frozen=True)
class Provisioned:
    """The outcome for one value: what goes into `status.projects[]` and, when Ready, the routes table.

    Reasons by state — Ready: `Created`, `Adopted`. Creating (created, keys not readable yet):
    `NoActiveKey`, `KeysUnavailable`. Failed: `NotFound` (missing, creation off), `NoTeam`, `TeamNotFound`,
    `SlugReserved` (409 with no active project), `Rejected` (400, e.g. slug too long for the instance),
    `InvalidSlug`, `NoActiveKey`, `InvalidDsn`, `Unauthorized` (401 or unreadable token), `Forbidden` (403),
    `ApiError` (anything else definite). The message names org, slug and, for auth, the scope needed.
    """

    value: str
    slug: str
    project_id: str | None
    endpoint: ProjectEndpoint | None
    state: ProjectState
    created: bool  # True only when this call got a 201 for the project
    reason: Reason | None
    message: str


def project_name(slug: str) -> str:
    """A display name for a new project: the slug, cut to Sentry's 50-character name limit."""
    return slug[:_NAME_LIMIT]


async def ensure_project(
    api: SentryApi,
    *,
    slug: str,
    team: str | None,
    platform: str,
    create: bool,
    known: dict[str, SentryProject] | None = None,
    keys: dict[str, list[SentryKey]] | None = None,
    value: str | None = None,
) -> Provisioned:
    """Adopt `slug` if it exists, else create it under `team` when `create` is set; then build its endpoint.

    `known` is a fresh `list_projects()` result keyed by slug; a slug missing from it is still confirmed
    with a GET before creating, so a stale listing cannot cause a duplicate create. `keys` is a fresh
    `list_org_keys()` result (project id → keys); projects absent from it get their own key listing.
    `value` is the attribute value the project serves (defaults to the slug). Raises TransientError only.
    """
    outcome = _Outcome(api=api, value=slug if value is None else value, slug=slug, known_keys=keys or {})
    try:
        checked_slug(slug, what="project")
        project = known.get(slug) if known is not None else None
        if project is None:
            project = await api.find_project(slug)
        if project is not None:
            sent_at = api.lost_create(slug)
            if sent_at is not None and created_after(project, sent_at):
                log.info(
                    "Sentry project %s/%s (id %s) is the one our unanswered create made", api.org, slug, project.id
                )
                return await _with_endpoint_after_create(outcome, project)
            return await outcome.with_endpoint(project, created=False)
        if not create:
            return outcome.failed(Reason.NOT_FOUND, f"project {api.org}/{slug} does not exist and creation is off")
        if not team:
            return outcome.failed(
                Reason.NO_TEAM, f"project {api.org}/{slug} does not exist and no team is set to create it"
            )
        return await _create(api, outcome, team=team, platform=platform)
    except TransientError:
        raise
    except AuthError as exc:
        return outcome.failed(
            Reason.UNAUTHORIZED if exc.status == 401 or exc.status is None else Reason.FORBIDDEN, str(exc)
        )
    except InvalidSlug as exc:
        return outcome.failed(Reason.INVALID_SLUG, str(exc))
    except NotFound as exc:
        return outcome.failed(Reason.NOT_FOUND, str(exc))
    except SentryApiError as exc:
        return outcome.failed(Reason.API_ERROR, str(exc))


async def _create(api: SentryApi, outcome: _Outcome, *, team: str, platform: str) -> Provisioned:
    slug = outcome.slug
    try:
        project = await api.create_project(team=team, slug=slug, name=project_name(slug), platform=platform)
    except SlugConflict as conflict:
        # Someone (another operator replica, a person, a retried POST) got there first: adopt if active.
        existing = await api.find_project(slug)
        if existing is not None and _ours_after_lost_answer(existing, conflict):
            log.info(
                "Created Sentry project %s/%s (id %s): the first answer was lost (%s), the retry found it",
                api.org,
                slug,
                existing.id,
                conflict.lost_answer,
            )
            return await _with_endpoint_after_create(outcome, existing)
        if existing is None:
            return outcome.failed(
                Reason.SLUG_RESERVED,
                f"slug {api.org}/{slug} is held by a project that is not active (pending deletion?); "
                "retrying until Sentry frees it (its data is held as pending meanwhile), or pick another slug",
            )
        return await outcome.with_endpoint(existing, created=False)
    except NotFound as exc:
        return outcome.failed(Reason.TEAM_NOT_FOUND, str(exc))
    except SentryApiError as exc:
        if exc.status == 400:  # Sentry's field errors, e.g. a slug over an older instance's 50-character limit
            return outcome.failed(Reason.REJECTED, str(exc))
        raise
    log.info("Created Sentry project %s/%s (id %s) under team %s", api.org, slug, project.id, team)
    return await _with_endpoint_after_create(outcome, project)


async def _with_endpoint_after_create(outcome: _Outcome, project: SentryProject) -> Provisioned:
    try:
        return await outcome.with_endpoint(project, created=True)
    except (TransientError, AuthError) as exc:
        # The 201 must not be forgotten (it decides deletionPolicy), so report Creating instead of raising.
        return outcome.result(
            project, None, ProjectState.CREATING, created=True, reason=Reason.KEYS_UNAVAILABLE, message=str(exc)
        )


#: Clock difference tolerated between this host and Sentry when comparing a project's `dateCreated`.
CLOCK_SKEW = 300.0


def _ours_after_lost_answer(project: SentryProject, conflict: SlugConflict) -> bool:
    """Did our own create take the slug? An earlier attempt got no definite answer (a 5xx or a network error
    after the request went out), the slug was free when we checked just before sending, and the project was
    created after we sent the first attempt. Sentry has no idempotency key for creates; this is the evidence."""
    if conflict.lost_answer is None or conflict.sent_at is None:
        return False
    return created_after(project, conflict.sent_at)


def created_after(project: SentryProject, sent_at: float) -> bool:
    """`project.dateCreated` is no earlier than `sent_at` (epoch seconds), give or take CLOCK_SKEW."""
    created = parse_rfc3339(project.date_created)
    return created is not None and created >= sent_at - CLOCK_SKEW


@dataclass(frozen=True)
class _Outcome:
    """Builds `Provisioned` results for one value and logs one line per adopt, create or failure."""

    api: SentryApi
    value: str
    slug: str
    known_keys: dict[str, list[SentryKey]]

    @property
    def shown_slug(self) -> str:
        """The slug as it may appear in a log line: as is when valid, else ASCII-escaped and cut."""
        return self.slug if is_valid_user_slug(self.slug) else ascii(self.slug)[:120]

    async def with_endpoint(self, project: SentryProject, *, created: bool) -> Provisioned:
        keys = self.known_keys.get(project.id)
        if keys is None:
            keys = await self.api.list_keys(project.slug)
        key = choose_key(keys)
        where = f"{self.api.org}/{project.slug}"
        if key is None:
            state = ProjectState.CREATING if created else ProjectState.FAILED
            return self.result(
                project,
                None,
                state,
                created=created,
                reason=Reason.NO_ACTIVE_KEY,
                message=f"{where} has no active client key",
            )
        try:
            endpoint = ingest_endpoint(project, key, connection_url=self.api.base_url)
        except EndpointError as exc:
            return self.result(
                project, None, ProjectState.FAILED, created=created, reason=Reason.INVALID_DSN, message=str(exc)
            )
        if not created:
            log.debug("Adopted Sentry project %s (id %s)", where, project.id)
        verb = "created" if created else "adopted"
        return self.result(
            project,
            endpoint,
            ProjectState.READY,
            created=created,
            reason=Reason.CREATED if created else Reason.ADOPTED,
            message=f"{where} {verb}",
        )

    def result(
        self,
        project: SentryProject,
        endpoint: ProjectEndpoint | None,
        state: ProjectState,
        *,
        created: bool,
        reason: Reason,
        message: str,
    ) -> Provisioned:
        if state == ProjectState.FAILED:
            log.warning("Sentry project %s/%s: %s (%s)", self.api.org, self.shown_slug, reason, message)
        return Provisioned(
            value=self.value,
            slug=self.slug,
            project_id=project.id,
            endpoint=endpoint,
            state=state,
            created=created,
            reason=reason,
            message=message,
        )

    def failed(self, reason: Reason, message: str) -> Provisioned:
        log.warning("Sentry project %s/%s: %s (%s)", self.api.org, self.shown_slug, reason, message)
        return Provisioned(
            value=self.value,
            slug=self.slug,
            project_id=None,
            endpoint=None,
            state=ProjectState.FAILED,
            created=False,
            reason=reason,
            message=message,
        )

"""What the emulated Sentry knows: organizations, teams, projects, client keys and auth tokens.

Plain synchronous methods behind one lock, so tests and the demo can seed and inspect from any thread while
the server runs on its own event loop. Ids are drawn from one counter shared by every kind of object, so a
client that confuses an org id with a project id gets a 404 instead of a lucky match.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

PROJECT_ACTIVE = "active"
PROJECT_PENDING_DELETION = "pending_deletion"
DEFAULT_SCOPES = ("org:read", "project:read", "project:write")
_SLUG_SUFFIX_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _now_iso() -> str:
    """Timestamps as Sentry serializes them: ISO 8601, UTC, `Z` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slugify_name(name: str) -> str:
    """Django's slugify (what Sentry applies to a project name when no slug is given)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"[-\s]+", "-", text).strip("-_") or "project"


@dataclass
class Org:
    id: str
    slug: str
    name: str
    date_created: str = field(default_factory=_now_iso)


@dataclass
class Team:
    id: str
    slug: str
    name: str
    org: str  # org slug
    date_created: str = field(default_factory=_now_iso)


@dataclass
class Key:
    seq: int  # creation order; Sentry lists keys newest first
    public: str
    secret: str
    name: str
    project_id: str
    is_active: bool = True
    rate_limit: dict[str, int] | None = None
    date_created: str = field(default_factory=_now_iso)
    created_monotonic: float = field(default_factory=time.monotonic)


@dataclass
class Project:
    id: str
    slug: str
    name: str
    org: str  # org slug
    platform: str | None
    teams: list[str]  # team slugs
    default_rules: bool = True
    status: str = PROJECT_ACTIVE
    date_created: str = field(default_factory=_now_iso)

    @property
    def is_active(self) -> bool:
        return self.status == PROJECT_ACTIVE


class SlugTaken(Exception):
    """An explicit project slug collides with an existing (possibly pending-deletion) project."""


class State:
    """The emulator's world. Every public method takes `lock`; handlers hold it while serializing."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self._key_seq = itertools.count(1)
        self.orgs: dict[str, Org] = {}  # by slug
        self.teams: dict[tuple[str, str], Team] = {}  # by (org slug, team slug)
        self.projects_by_id: dict[str, Project] = {}
        self.keys: dict[str, Key] = {}  # by public key
        self.tokens: dict[str, frozenset[str]] = {}  # token value → scopes

    def _next_id(self) -> str:
        return str(next(self._ids))

    # --- seeding ---------------------------------------------------------------------------------------

    def add_org(self, slug: str, *, name: str | None = None) -> Org:
        with self.lock:
            if slug in self.orgs:
                return self.orgs[slug]
            org = Org(id=self._next_id(), slug=slug, name=name or slug)
            self.orgs[slug] = org
            return org

    def add_team(self, org: str, slug: str, *, name: str | None = None) -> Team:
        with self.lock:
            org_slug = self._require_org(org).slug
            existing = self.teams.get((org_slug, slug))
            if existing:
                return existing
            team = Team(id=self._next_id(), slug=slug, name=name or slug, org=org_slug)
            self.teams[(org_slug, slug)] = team
            return team

    def add_project(
        self,
        org: str,
        team: str,
        slug: str,
        name: str | None = None,
        platform: str | None = "other",
        *,
        default_rules: bool = True,
    ) -> Project:
        """Create a project with an explicit slug (raises SlugTaken on a collision) and its "Default" key."""
        with self.lock:
            team_obj = self.find_team(org, team)
            if team_obj is None:
                raise KeyError(f"unknown team {org}/{team}")
            if self._slug_holder(team_obj.org, slug) is not None:
                raise SlugTaken(slug)
            project = Project(
                id=self._next_id(),
                slug=slug,
                name=name or slug,
                org=team_obj.org,
                platform=platform,
                teams=[team_obj.slug],
                default_rules=default_rules,
            )
            self.projects_by_id[project.id] = project
            self.add_key(project.org, project.id, name="Default")
            return project

    def unique_slug(self, org: str, name: str, *, max_length: int) -> str:
        """Sentry's `slugify_instance`: the slugified name, else the name plus a short random suffix."""
        with self.lock:
            base = slugify_name(name)[:max_length]
            if self._slug_holder(org, base) is None:
                return base
            for size in (2, 2, 3, 3, 3, 5, 12):
                end = "".join(secrets.choice(_SLUG_SUFFIX_CHARS) for _ in range(size))
                candidate = f"{base[: max_length - size - 1]}-{end}"
                if self._slug_holder(org, candidate) is None:
                    return candidate
            raise SlugTaken(base)

    def add_key(
        self,
        org: str,
        project: str,
        name: str = "sentryroute",
        *,
        public: str | None = None,
        rate_limit: dict[str, int] | None = None,
    ) -> Key:
        """Add a client key; `public` fixes the public key (32 hex) so a seed gives stable DSNs."""
        if public is not None and not re.fullmatch(r"[0-9a-f]{32}", public):
            raise ValueError("a public key is 32 lowercase hex characters")
        with self.lock:
            project_obj = self.find_project(org, project, include_deleted=True)
            if project_obj is None:
                raise KeyError(f"unknown project {org}/{project}")
            key = Key(
                seq=next(self._key_seq),
                public=public or uuid.uuid4().hex,
                secret=uuid.uuid4().hex,
                name=name,
                project_id=project_obj.id,
                rate_limit=rate_limit,
            )
            self.keys[key.public] = key
            return key

    def set_key_active(self, public: str, active: bool) -> None:
        with self.lock:
            self.keys[public].is_active = active

    def delete_key(self, public: str) -> None:
        """Remove a key for good (ingest with it then gets 403, like an unknown key)."""
        with self.lock:
            del self.keys[public]

    def delete_project(self, org: str, project: str) -> None:
        """Mark the project pending deletion: hidden from the API, rejected by ingest, its slug still held."""
        with self.lock:
            project_obj = self.find_project(org, project)
            if project_obj is None:
                raise KeyError(f"unknown project {org}/{project}")
            project_obj.status = PROJECT_PENDING_DELETION

    def finish_deletions(self, org: str | None = None) -> list[str]:
        """Sentry's deletion task ran: projects pending deletion are gone for good and their slugs free again."""
        with self.lock:
            done = [
                p
                for p in self.projects_by_id.values()
                if p.status == PROJECT_PENDING_DELETION and (org is None or p.org == org)
            ]
            for project in done:
                del self.projects_by_id[project.id]
            return [p.slug for p in done]

    def add_token(
        self, scopes: Iterable[str] = ("org:read", "project:read", "project:write"), value: str | None = None
    ) -> str:
        with self.lock:
            token = value or "sntryu_" + secrets.token_hex(32)
            self.tokens[token] = frozenset(scopes)
            return token

    def revoke_token(self, value: str) -> None:
        with self.lock:
            self.tokens.pop(value, None)

    def reset(self) -> None:
        """Forget everything (control API `reset`)."""
        with self.lock:
            self.orgs.clear()
            self.teams.clear()
            self.projects_by_id.clear()
            self.keys.clear()
            self.tokens.clear()

    # --- lookups ---------------------------------------------------------------------------------------

    def find_org(self, ident: str) -> Org | None:
        """Org by slug or id (Sentry path params accept either)."""
        with self.lock:
            return self.orgs.get(ident) or next((o for o in self.orgs.values() if o.id == ident), None)

    def find_team(self, org: str, ident: str) -> Team | None:
        with self.lock:
            org_obj = self.find_org(org)
            if org_obj is None:
                return None
            return next(
                (t for t in self.teams.values() if t.org == org_obj.slug and ident in (t.slug, t.id)),
                None,
            )

    def find_project(self, org: str, ident: str, *, include_deleted: bool = False) -> Project | None:
        with self.lock:
            org_obj = self.find_org(org)
            if org_obj is None:
                return None
            for project in self.projects_by_id.values():
                if project.org != org_obj.slug or ident not in (project.slug, project.id):
                    continue
                if project.is_active or include_deleted:
                    return project
            return None

    def project(self, org: str, slug: str) -> Project | None:
        """Active project by org and slug (or id)."""
        return self.find_project(org, slug)

    def projects(self, org: str) -> list[Project]:
        """Active projects of `org`, ordered by slug like the Web API."""
        with self.lock:
            org_obj = self.find_org(org)
            if org_obj is None:
                return []
            found = [p for p in self.projects_by_id.values() if p.org == org_obj.slug and p.is_active]
            return sorted(found, key=lambda p: p.slug)

    def org_teams(self, org: str) -> list[Team]:
        with self.lock:
            return sorted((t for t in self.teams.values() if t.org == org), key=lambda t: t.slug)

    def project_keys(self, project_id: str) -> list[Key]:
        """A project's keys, newest first."""
        with self.lock:
            found = [k for k in self.keys.values() if k.project_id == project_id]
            return sorted(found, key=lambda k: -k.seq)

    def _require_org(self, ident: str) -> Org:
        org = self.find_org(ident)
        if org is None:
            raise KeyError(f"unknown org {ident}")
        return org

    def _slug_holder(self, org: str, slug: str) -> Project | None:
        """The project holding `slug` in `org`, including one pending deletion (its slug stays reserved)."""
        return next((p for p in self.projects_by_id.values() if p.org == org and p.slug == slug), None)

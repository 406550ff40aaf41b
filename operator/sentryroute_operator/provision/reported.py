"""Values reported by forwarders (SPEC §4): identity routes for existing projects, and `--auto-create`.

A reported value whose raw text is an existing project's slug gets an identity route; otherwise, with
`--auto-create`, a project `slug(value)` is created under `--auto-create-team` unless the policy refuses it
(placeholder, deny pattern, hourly cap). Both are operator-wide, so only reports of forwarders in `attribute`
mode (the trusting mode) are provisioned; reports of `peer`-mode forwarders, which name the sender's
namespace, are removed unprovisioned until scoped auto-create exists (SPEC §4).
"""

from __future__ import annotations

import logging
import time

from sentryroute.routes import Refused, slug

from ..derive.reports import Report
from .autocreate import AutoCreatePolicy
from .catalog import ConnectionRuntime
from .errors import TransientError
from .provisioner import ensure_project
from .state import ValueState, gone_if_known

log = logging.getLogger(__name__)

#: Bound on the rendered `refused` list, so hostile reports cannot grow the table without limit.
MAX_REFUSED = 1000


class ReportedValues:
    def __init__(self, *, attribute: str, auto_create: bool, team: str | None, policy: AutoCreatePolicy) -> None:
        self.attribute = attribute
        self.auto_create = auto_create
        self.team = team
        self.policy = policy
        self.states: dict[str, ValueState] = {}
        self.refused: dict[str, str] = {}
        self.pending_reports: list[Report] = []
        self.checked: set[str] = set()  # values the last runs looked at (a no-op for them until re-verified)
        self.created: set[str] = set()  # values whose project this process auto-created (re-created if deleted)
        self.suspect: set[str] = set()  # routed values a forwarder reported Sentry refused: verify now
        self.due = False

    def heal(self, value: str) -> bool:
        """A forwarder reported Sentry refused `value`'s project: verify it at once. False: not ours."""
        if value not in self.states:
            return False
        self.suspect.add(value)
        self.due = True
        return True

    def candidates(self, routed_values: set[str]) -> list[str]:
        """Reported values of our attribute that no route covers yet (plus refusals worth re-checking)."""
        if not self.due:
            return []
        # A report from a forwarder in peer mode names the namespace it came from; auto-create and identity
        # routes here are operator-wide, which would let one namespace route into another's projects (SPEC §4),
        # so those reports are not provisioned by this release (they are removed as handled).
        values = {r.value for r in self.pending_reports if r.attribute == self.attribute and not r.scoped}
        values |= {v for v, reason in self.refused.items() if reason == "rate_limited"}
        fresh = {v for v in values - routed_values if v not in self.states or self.states[v].good is None}
        return sorted(fresh | (self.suspect & set(self.states)))

    async def provision(self, conn: ConnectionRuntime, values: list[str], *, warmup: float) -> None:
        """Route or create each value; one value's transient error never stops the others."""
        self.due = False
        catalog = await conn.refresh()
        for value in values:
            self.checked.add(value)
            if value in self.suspect:
                self.suspect.discard(value)
                await self._heal(conn, value, warmup=warmup)
                continue
            existing = catalog is not None and value in catalog
            if not existing:
                if not self.auto_create or not self.team:
                    continue
                reason = self.policy.refusal(value)
                if reason is not None:
                    self.refused[value] = reason
                    continue
            self.refused.pop(value, None)
            target = value if existing else slug(value)
            try:
                result = await ensure_project(
                    conn.api,
                    slug=target,
                    team=self.team,
                    platform="other",
                    create=not existing,
                    known=catalog,
                    value=value,
                )
            except TransientError as exc:
                log.warning("Reported value %r: %s", value[:100], exc)
                continue
            if result.created:
                self.policy.record_creation()
                self.created.add(value)
            state = self.states.setdefault(value, ValueState(slug=target))
            state.record(result, now=time.monotonic(), warmup=warmup)

    async def _heal(self, conn: ConnectionRuntime, value: str, *, warmup: float) -> None:
        """Ask Sentry directly (not the catalog): re-create what auto-create made, else report it gone."""
        state = self.states[value]
        create = value in self.created and self.auto_create and bool(self.team)
        try:
            result = await ensure_project(
                conn.api, slug=state.slug, team=self.team, platform="other", create=create, known=None, value=value
            )
        except TransientError as exc:
            log.warning("Re-verifying reported value %r: %s", value[:100], exc)
            self.suspect.add(value)  # the next run tries again
            return
        if not create:
            result = gone_if_known(
                result, state, why="it was not auto-created by this operator, so it is not re-created"
            )
        if result.created:
            self.policy.record_creation()
            log.info("Re-created project %s for reported value %r (the old one is gone)", state.slug, value[:100])
        state.record(result, now=time.monotonic(), warmup=warmup)

    def refusals(self) -> list[Refused]:
        items = sorted(self.refused.items())[:MAX_REFUSED]
        return [Refused(attribute=self.attribute, value=v, reason=r) for v, r in items]

    def handled_keys(self, routed_values: set[str]) -> list[str]:
        """Report entries the operator is done with: routed, refused, or nothing it could ever do."""
        done = []
        for report in self.pending_reports:
            state = self.states.get(report.value)
            hopeless = report.value in self.checked and (state is None or state.good is None)
            if (
                report.scoped  # peer mode: never provisioned operator-wide (see `candidates`)
                or report.attribute != self.attribute
                or report.value in routed_values
                or report.value in self.refused
                or (hopeless and (state is None or state.result is None or state.failed))
            ):
                done.append(report.key)
        return done

"""Values reported by forwarders (SPEC §4): identity routes for existing projects, and `--auto-create`.

Every reported value is keyed by (namespace, value). The namespace is None for reports of forwarders in
`attribute` mode (the trusting mode): such a value is provisioned operator-wide, as before — an identity
route when its raw text is an existing project's slug, else with `--auto-create` a project `slug(value)`.

A report of a forwarder in `peer` mode names the namespace X its data came from, and is provisioned **for X
only** (rendered as X's namespaced entries, which a peer-mode forwarder matches for X's telemetry alone):
- an identity route only into a project X owns: one a route of X (or a ClusterSentryRoute covering X) maps,
  or one sentryroute created for X;
- with `--auto-create`, a new project `slug("<X>-<value>")`, remembered as created for X; if that slug
  exists and is not X's, the value is refused (`taken`), never adopted.
A report from a peer with no namespace is never provisioned. Which projects were created for which
namespace survives a restart (`provenance.Provenance`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from sentryroute.routes import Refused, json_size, slug

from ..derive.reports import Report
from .autocreate import AutoCreatePolicy
from .catalog import ConnectionRuntime
from .errors import TransientError
from .provisioner import ensure_project
from .state import ValueState, gone_if_known

log = logging.getLogger(__name__)

#: (namespace, value): namespace None for operator-wide values (reports of `attribute`-mode forwarders).
ValueKey = tuple[str | None, str]
#: Bound on the rendered `refused` list in bytes (SPEC §3), so hostile reports cannot grow the table.
MAX_REFUSED_BYTES = 64 * 1024
#: Refusals remembered (the most recent); older ones are forgotten (their values may be reported again).
MAX_REFUSALS_REMEMBERED = 10_000
#: The refusal of a value whose project exists but is not the reporting namespace's (SPEC §4).
TAKEN = "taken"


def scoped_slug(namespace: str, value: str) -> str:
    """The project auto-create makes for `value` reported from `namespace` (SPEC §4)."""
    return slug(f"{namespace}-{value}")


class ReportedValues:
    def __init__(self, *, attribute: str, auto_create: bool, team: str | None, policy: AutoCreatePolicy) -> None:
        self.attribute = attribute
        self.auto_create = auto_create
        self.team = team
        self.policy = policy
        self.states: dict[ValueKey, ValueState] = {}
        self.refused: dict[ValueKey, str] = {}
        self.pending_reports: list[Report] = []
        self.checked: set[ValueKey] = set()  # keys the last runs looked at (a no-op for them until re-verified)
        self.created: set[ValueKey] = set()  # keys whose project sentryroute auto-created (re-created if deleted)
        self.suspect: set[ValueKey] = set()  # routed keys a forwarder reported Sentry refused: verify now
        self.due = False

    # --- what to provision ----------------------------------------------------------------------------

    def key_of(self, report: Report) -> ValueKey | None:
        """The key a report is provisioned under; None when it never is (another attribute, or a peer-mode
        report without a namespace: an unknown peer is never auto-created or identity-routed, SPEC §6.1)."""
        if report.attribute != self.attribute:
            return None
        if report.scoped:
            return None if report.namespace is None else (report.namespace, report.value)
        return (None, report.value)

    def heal(self, value: str) -> bool:
        """A forwarder reported Sentry refused `value`'s project: verify it at once. False: not ours."""
        keys = {key for key in self.states if key[1] == value}
        self.suspect |= keys
        self.due = self.due or bool(keys)
        return bool(keys)

    def candidates(self, routed: set[ValueKey]) -> list[ValueKey]:
        """Reported keys no route covers yet, plus refusals worth re-checking and restored values not yet
        answered (after a restart), plus suspects."""
        if not self.due:
            return []
        keys = {key for key in map(self.key_of, self.pending_reports) if key is not None}
        keys |= {k for k, reason in self.refused.items() if reason == "rate_limited"}
        keys |= {k for k, state in self.states.items() if state.result is None}
        fresh = {k for k in keys - routed if k not in self.states or self.states[k].good is None}
        return sorted(fresh | (self.suspect & set(self.states)), key=_order)

    async def provision(
        self,
        conn: ConnectionRuntime,
        keys: list[ValueKey],
        *,
        warmup: float,
        owned: Callable[[str], frozenset[str]],
    ) -> None:
        """Route or create each key; one key's transient error never stops the others. `owned(X)`: the
        project slugs routes of namespace X (or ClusterSentryRoutes covering X) map."""
        self.due = False
        reported = {k for k in map(self.key_of, self.pending_reports) if k is not None}
        self.checked &= reported | set(self.states)  # only what may still be reported is worth remembering
        catalog = await conn.refresh()
        for key in keys:
            self.checked.add(key)
            if key in self.suspect:
                self.suspect.discard(key)
                await self._heal(conn, key, warmup=warmup)
                continue
            target = self._target(key, catalog is not None and key[1] in catalog, owned)
            if target is None:
                continue
            create = catalog is None or target not in catalog
            if not create and key[0] is not None and not self._owns(key[0], target, owned):
                self._refuse(key, TAKEN)  # exists, but neither mapped by X's routes nor created for X
                continue
            self.refused.pop(key, None)
            try:
                result = await ensure_project(
                    conn.api,
                    slug=target,
                    team=self.team,
                    platform="other",
                    create=create,
                    known=catalog,
                    value=key[1],
                )
            except TransientError as exc:
                log.warning("Reported value %r: %s", key[1][:100], exc)
                continue
            if result.created:
                self.policy.record_creation()
                self.created.add(key)
            elif create and key[0] is not None and result.project_id and not self._owns(key[0], target, owned):
                # A stale catalog: the project existed after all (adopted, not ours) — never X's then.
                self._refuse(key, TAKEN)
                continue
            state = self.states.setdefault(key, ValueState(slug=target))
            state.record(result, now=time.monotonic(), warmup=warmup)

    def _target(self, key: ValueKey, exists: bool, owned: Callable[[str], frozenset[str]]) -> str | None:
        """The slug to route `key` to: an existing project it may use (identity), else the one auto-create
        makes — or None (recorded as a refusal where the policy refuses it)."""
        namespace, value = key
        if exists and (namespace is None or self._owns(namespace, value, owned)):
            return value
        if key in self.states and key in self.created:
            return self.states[key].slug  # ours already (restored after a restart)
        if not self.auto_create or not self.team:
            return None
        reason = self.policy.refusal(value)
        if reason is not None:
            self._refuse(key, reason)
            return None
        return slug(value) if namespace is None else scoped_slug(namespace, value)

    def _owns(self, namespace: str, target: str, owned: Callable[[str], frozenset[str]]) -> bool:
        if target in owned(namespace):
            return True
        # Over the created keys only (bounded by the creation cap), not a copy of every state per call.
        return any(k[0] == namespace and k in self.states and self.states[k].slug == target for k in self.created)

    def _refuse(self, key: ValueKey, reason: str) -> None:
        self.refused.pop(key, None)
        self.refused[key] = reason  # most recent last: the oldest refusals are forgotten first
        while len(self.refused) > MAX_REFUSALS_REMEMBERED:
            del self.refused[next(iter(self.refused))]

    async def _heal(self, conn: ConnectionRuntime, key: ValueKey, *, warmup: float) -> None:
        """Ask Sentry directly (not the catalog): re-create what auto-create made, else report it gone."""
        state = self.states[key]
        create = key in self.created and self.auto_create and bool(self.team)
        try:
            result = await ensure_project(
                conn.api, slug=state.slug, team=self.team, platform="other", create=create, known=None, value=key[1]
            )
        except TransientError as exc:
            log.warning("Re-verifying reported value %r: %s", key[1][:100], exc)
            self.suspect.add(key)  # the next run tries again
            return
        if not create:
            result = gone_if_known(result, state, why="it was not auto-created by sentryroute, so it is not re-created")
        if result.created:
            self.policy.record_creation()
            log.info("Re-created project %s for reported value %r (the old one is gone)", state.slug, key[1][:100])
        state.record(result, now=time.monotonic(), warmup=warmup)

    # --- what to render and remove --------------------------------------------------------------------

    def refusals(self) -> list[Refused]:
        """The most recent refusals that fit in MAX_REFUSED_BYTES, in a stable order (SPEC §3)."""
        kept: list[Refused] = []
        used = 0
        for (namespace, value), reason in reversed(self.refused.items()):
            entry = Refused(attribute=self.attribute, value=value, reason=reason, namespace=namespace)
            used += json_size(entry.model_dump(mode="json", exclude_none=True)) + 1
            if used > MAX_REFUSED_BYTES:
                break
            kept.append(entry)
        return sorted(kept, key=lambda r: (r.namespace or "", r.value))

    def handled_keys(self, routed: set[ValueKey]) -> list[str]:
        """Report entries the operator is done with: routed, refused, or nothing it could ever do."""
        done = []
        for report in self.pending_reports:
            key = self.key_of(report)
            if key is None or key in routed or key in self.refused:
                done.append(report.key)
                continue
            state = self.states.get(key)
            hopeless = key in self.checked and (state is None or state.good is None)
            if hopeless and (state is None or state.result is None or state.failed):
                done.append(report.key)
        return done

    # --- provenance across restarts -------------------------------------------------------------------

    def remembered(self) -> list[tuple[ValueKey, str, bool]]:
        """(key, slug, created) of every value with a project, for `provenance.Provenance` to persist."""
        return [
            (key, state.slug, key in self.created)
            for key, state in sorted(self.states.items(), key=lambda kv: _order(kv[0]))
            if state.good is not None or key in self.created
        ]

    def restore(self, entries: Iterable[tuple[ValueKey, str, bool]]) -> None:
        """Seed values (and whether sentryroute created their project) persisted before a restart: they keep
        their previous table entries until re-checked, and created ones are re-created if deleted."""
        for key, target, created in entries:
            self.states.setdefault(key, ValueState(slug=target))
            if created:
                self.created.add(key)
        self.due = self.due or bool(self.states)


def _order(key: ValueKey) -> tuple[str, str]:
    return (key[0] or "", key[1])

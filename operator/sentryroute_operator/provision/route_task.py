"""Provisioning one SentryRoute's items against its connection: the body of a scheduler task.

Values are provisioned one by one; after each answer `progress()` lets the loop render, so one slow value
never holds back the others. Only `TransientError` is caught per value (the previous answer and table entry
stay); every other Sentry answer arrives as a `Provisioned` result.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..derive.plan import Item, ItemKey, ItemKind, RoutePlan
from .announce import announce
from .catalog import ConnectionRuntime
from .errors import TransientError
from .provisioner import ProjectState, ensure_project
from .state import ADOPTED_NOT_RECREATED, RECREATE_OFF, RouteMemory, ValueState, gone_if_known


async def provision_route(
    plan: RoutePlan,
    memory: RouteMemory,
    conn: ConnectionRuntime,
    *,
    verify: bool,
    warmup: float,
    progress: Callable[[], None],
    suspect: frozenset[ItemKey] = frozenset(),
) -> bool:
    """Bring every item of `plan` to a settled answer; True when something needs a retry soon.

    `verify` re-asks Sentry about values that already have an answer (re-verification: deleted projects,
    rotated keys). `suspect` items — a forwarder reported Sentry refused their project — are asked about
    directly, not from the catalog listing, which may predate a deletion: a project this route created is
    re-created (new id, new key), an adopted one becomes `ProjectGone`, a rotated key is replaced. Identity
    items are dropped when the catalog does not hold their slug.
    """
    spec = plan.spec
    catalog = await conn.refresh()
    retry = False
    for item in plan.items:
        state = memory.value(item)
        healing = item.key in suspect
        if not verify and not healing and state is not None and state.settled:
            continue
        if not healing and item.kind == ItemKind.IDENTITY and (catalog is None or item.slug not in catalog):
            memory.values.pop(item.key, None)
            continue
        auto = spec.auto
        may_create = memory.may_create(spec, item)
        try:
            result = await ensure_project(
                conn.api,
                slug=item.slug,
                team=auto.team if auto else None,
                platform=auto.platform if auto else "other",
                create=may_create,
                known=None if healing else catalog,
                value=item.value,
            )
        except TransientError as exc:
            retry = True
            (state or memory.values.setdefault(item.key, ValueState(slug=item.slug))).transient = str(exc)
            continue
        if item.has_status and not may_create:
            why = RECREATE_OFF if memory.created(item.slug) else ADOPTED_NOT_RECREATED
            result = gone_if_known(result, state, why=why)
        if item.kind != ItemKind.IDENTITY:
            announce(spec.object_ref(), _what(item), state, result)
        state = state or ValueState(slug=item.slug)
        state.record(result, now=time.monotonic(), warmup=warmup)
        memory.values[item.key] = state
        memory.remember_provenance(item, result)
        retry = retry or result.state == ProjectState.CREATING or state.waiting_for_slug
        progress()
    wanted = {item.key for item in plan.items}
    memory.values = {k: v for k, v in memory.values.items() if k in wanted}
    return retry


def _what(item: Item) -> str:
    return "fallback project" if item.kind == ItemKind.FALLBACK else f"project for {item.value!r}"

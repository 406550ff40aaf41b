"""Which reported values have projects, and which of those sentryroute created — kept across restarts (SPEC §4).

Routes keep this in their status (`status.projects[].created`); reported values have no object of their own,
so the operator keeps it in an annotation on the routes ConfigMap, which only the operator writes (forwarders
may only read it; the report ConfigMap, which forwarders patch, would let a forwarder forge provenance).
A restarted operator reads it back: restored values keep their table entries until re-checked, a project
auto-created for namespace X is still X's (so X's identity routes into it stay allowed, and another
namespace's never are), and one auto-create made is re-created if it is deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sentryroute.routes import canonical_json, is_valid_user_slug, json_size

from ..derive.reports import MAX_VALUE
from .reported import ValueKey

log = logging.getLogger(__name__)

ANNOTATION = "sentryroute.dev/reported-values"
#: Kubernetes allows 256 KiB of annotations per object; this one stays well inside it.
MAX_BYTES = 128 * 1024

Remembered = tuple[ValueKey, str, bool]


def encode(entries: Iterable[Remembered]) -> str:
    """Canonical JSON, created projects first so that what must not be forgotten is kept within MAX_BYTES."""
    ordered = sorted(entries, key=lambda e: (not e[2], e[0][0] or "", e[0][1]))
    out: list[dict[str, Any]] = []
    used = 2
    for (namespace, value), slug, created in ordered:
        item: dict[str, Any] = {"value": value, "slug": slug, "created": created}
        if namespace is not None:
            item["namespace"] = namespace
        used += json_size(item) + 1
        if used > MAX_BYTES:
            log.warning("Remembering only %d reported values across restarts (annotation size bound)", len(out))
            break
        out.append(item)
    return canonical_json(out)


def decode(text: str | None) -> list[Remembered]:
    """The entries of the annotation; malformed ones are skipped (a hand edit never stops the operator)."""
    if not text:
        return []
    try:
        items = json.loads(text)
    except ValueError:
        log.warning("Ignoring the unreadable %s annotation of the routes ConfigMap", ANNOTATION)
        return []
    out: list[Remembered] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        value, slug, created, namespace = (
            item.get("value"),
            item.get("slug"),
            item.get("created"),
            item.get("namespace"),
        )
        if (
            isinstance(value, str)
            and 0 < len(value) <= MAX_VALUE
            and isinstance(slug, str)
            and is_valid_user_slug(slug)
            and isinstance(created, bool)
            and (namespace is None or (isinstance(namespace, str) and 0 < len(namespace) <= 63))
        ):
            out.append(((namespace, value), slug, created))
    return out

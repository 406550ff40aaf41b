"""Where a resource goes, by the routes table's matching rules (SPEC §3).

The table is compiled once per revision into dictionaries keyed by attribute and value, so a decision
costs a few dictionary lookups however many routes the table has; the first-match order of the table is
kept by remembering each entry's position.

The resource's namespace is decided by the caller (`split_request`, from the request's `Origin`); the router
only applies the scope rule: a namespaced entry matches that namespace, and — unless `strict` (`peer` mode) or
the entry is `exact` (a namespaceSelector's) — also a resource whose namespace is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sentryroute.routes import MAX_REPORTED_VALUE, NAMESPACE_ATTRIBUTE, Pending, Refused, RoutesTable
from sentryroute_forwarder.model import Destination

__all__ = ["NAMESPACE_ATTRIBUTE", "Decision", "Router"]

_DEFAULT_ATTRIBUTE = "service.name"


class _Claimed:
    """Marker: take the namespace from the resource's own attribute."""


CLAIMED = _Claimed()
T = TypeVar("T")

#: (destination, routing attribute, its string value or None)
Decision = tuple[Destination, str | None, str | None]


class _Scoped(Generic[T]):
    """The entries of one (attribute, value), compiled so a decision is two dictionary reads however many
    namespaces share the value (a ClusterSentryRoute's namespaceSelector renders one entry per namespace).

    For each way a resource can match, the first entry (lowest table position) is kept: the first cluster-wide
    entry, the first entry of each namespace, and the first that a resource of no namespace may match in the
    trusting mode (namespaced and not `exact`).
    """

    __slots__ = ("anywhere", "by_namespace", "unscoped")

    def __init__(self) -> None:
        self.anywhere: tuple[int, T] | None = None
        self.by_namespace: dict[str, tuple[int, T]] = {}
        self.unscoped: tuple[int, T] | None = None

    def add(self, position: int, namespace: str | None, payload: T, *, exact: bool = False) -> None:
        entry = (position, payload)
        if namespace is None:
            if self.anywhere is None:
                self.anywhere = entry
            return
        self.by_namespace.setdefault(namespace, entry)
        if not exact and self.unscoped is None:
            self.unscoped = entry

    def first(self, namespace: str | None, loose: bool) -> tuple[int, T] | None:
        """The first entry that applies to a resource of `namespace` (None: none or unknown)."""
        best = self.anywhere
        other = self.by_namespace.get(namespace) if namespace is not None else self.unscoped if loose else None
        if other is not None and (best is None or other[0] < best[0]):
            return other
        return best


#: attribute → value → its entries (routes: their destination; refused, pending: nothing).
_Compiled = dict[str, dict[str, _Scoped[Destination]]]
_Listing = dict[str, dict[str, _Scoped[None]]]


@dataclass(frozen=True, slots=True)
class _Fallback:
    attribute: str
    namespace: str | None
    destination: Destination


def _compile_listing(entries: Iterable[Refused | Pending]) -> _Listing:
    """attribute → value → its entries, for the `refused` or `pending` list of a table."""
    listing: _Listing = {}
    for position, entry in enumerate(entries):
        listing.setdefault(entry.attribute, {}).setdefault(entry.value, _Scoped()).add(position, entry.namespace, None)
    return listing


class Router:
    """Decides the destination of one resource from its attributes; immutable, one per table revision.

    `strict` (`--namespace-from peer`): a namespaced entry matches only its own namespace, never a resource
    without one. Otherwise (`attribute`, the trusting mode) a resource with no namespace matches it too, unless
    the entry is `exact`.
    """

    def __init__(self, table: RoutesTable, *, strict: bool = False) -> None:
        self.table = table
        self.strict = strict
        self._routes: _Compiled = {}
        for position, route in enumerate(table.routes):
            scoped = self._routes.setdefault(route.attribute, {}).setdefault(route.value, _Scoped())
            destination = Destination("project", project=route.project)
            scoped.add(position, route.namespace, destination, exact=bool(route.exact))
        self._refused = _compile_listing(table.refused)
        self._pending = _compile_listing(table.pending)
        self._fallbacks = [
            _Fallback(f.attribute, f.namespace, Destination("project", project=f.project)) for f in table.fallbacks
        ]
        self._unrouted = Destination(
            "hold" if table.unrouted == "hold" else "drop",
            reason="unrouted",
        )
        self._unrouted_attribute = self._primary_attribute(table)
        # Every resource attribute a decision may read: the wire reader decodes only these.
        self.keys: frozenset[str] = frozenset(
            [
                *self._routes,
                *self._refused,
                *self._pending,
                *(f.attribute for f in self._fallbacks),
                self._unrouted_attribute,
                NAMESPACE_ATTRIBUTE,
            ]
        )

    @staticmethod
    def _primary_attribute(table: RoutesTable) -> str:
        """The attribute unrouted resources are reported under (what the operator would create projects by)."""
        if table.autoCreate is not None:
            return table.autoCreate.attribute
        if table.routes:
            return table.routes[0].attribute
        return _DEFAULT_ATTRIBUTE

    def decide(self, attributes: Mapping[str, object], namespace: str | _Claimed | None = CLAIMED) -> Decision:
        """Routes in order (first match wins), then refused, pending, fallbacks, and the `unrouted` policy.

        `namespace`: the resource's namespace as the caller determined it (None: none or unknown); by
        default the resource's own `k8s.namespace.name` claim.
        """
        if isinstance(namespace, _Claimed):
            claimed = attributes.get(NAMESPACE_ATTRIBUTE)
            namespace = claimed if isinstance(claimed, str) else None
        loose = namespace is None and not self.strict
        best: tuple[int, Destination] | None = None
        best_attribute = best_value = None
        for attribute, by_value in self._routes.items():
            value = attributes.get(attribute)
            if not isinstance(value, str):
                continue
            scoped = by_value.get(value)
            found = scoped.first(namespace, loose) if scoped is not None else None
            if found is not None and (best is None or found[0] < best[0]):
                best, best_attribute, best_value = found, attribute, value
        if best is not None:
            return best[1], best_attribute, best_value

        listed = self._first_listed(self._refused, attributes, namespace, loose)
        if listed is not None:
            return Destination("drop", reason="refused"), *listed
        listed = self._first_listed(self._pending, attributes, namespace, loose)
        if listed is not None:
            return Destination("hold", reason="pending"), *listed

        for fallback in self._fallbacks:
            if fallback.namespace is None or fallback.namespace == namespace:
                value = attributes.get(fallback.attribute)
                return fallback.destination, fallback.attribute, value if isinstance(value, str) else None

        value = attributes.get(self._unrouted_attribute)
        if not isinstance(value, str):
            return self._unrouted, self._unrouted_attribute, None
        if self._unrouted.kind == "hold" and len(value) > MAX_REPORTED_VALUE:
            # Never held nor reported (SPEC §4): a flood of long values must not reach the report channel.
            return Destination("drop", reason="value_too_long"), self._unrouted_attribute, value
        return self._unrouted, self._unrouted_attribute, value

    @staticmethod
    def _first_listed(
        listing: _Listing, attributes: Mapping[str, object], namespace: str | None, loose: bool
    ) -> tuple[str, str] | None:
        """(attribute, value) of the earliest entry of `listing` this resource carries, in its namespace."""
        found: tuple[int, str, str] | None = None
        for attribute, by_value in listing.items():
            value = attributes.get(attribute)
            if not isinstance(value, str):
                continue
            scoped = by_value.get(value)
            entry = scoped.first(namespace, loose) if scoped is not None else None
            if entry is not None and (found is None or entry[0] < found[0]):
                found = (entry[0], attribute, value)
        return None if found is None else (found[1], found[2])

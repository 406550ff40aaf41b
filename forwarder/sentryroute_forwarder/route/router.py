"""Where a resource goes, by the routes table's matching rules (SPEC §3).

The table is compiled once per revision into dictionaries keyed by attribute and value, so a decision
costs a few dictionary lookups however many routes the table has; the first-match order of the table is
kept by remembering each entry's position.

The resource's namespace is decided by the caller (`split_request`, from the request's `Origin`); the router
only applies the scope rule: a namespaced entry matches that namespace, and — unless `strict` (`peer` mode) —
also a resource whose namespace is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sentryroute.routes import MAX_REPORTED_VALUE, NAMESPACE_ATTRIBUTE, RoutesTable
from sentryroute_forwarder.model import Destination

__all__ = ["NAMESPACE_ATTRIBUTE", "Decision", "Router"]

_DEFAULT_ATTRIBUTE = "service.name"


class _Claimed:
    """Marker: take the namespace from the resource's own attribute."""


CLAIMED = _Claimed()
#: Listed values (refused, pending): attribute → value → (position, namespace) in table order.
_Listing = dict[str, dict[str, list[tuple[int, str | None]]]]

#: (destination, routing attribute, its string value or None)
Decision = tuple[Destination, str | None, str | None]


@dataclass(frozen=True, slots=True)
class _Candidate:
    position: int  # index in the table's `routes`: lower wins
    namespace: str | None
    destination: Destination


@dataclass(frozen=True, slots=True)
class _Fallback:
    attribute: str
    namespace: str | None
    destination: Destination


class Router:
    """Decides the destination of one resource from its attributes; immutable, one per table revision.

    `strict` (`--namespace-from peer`): a namespaced entry matches only its own namespace, never a resource
    without one. Otherwise (`attribute`, the trusting mode) a resource with no namespace matches it too.
    """

    def __init__(self, table: RoutesTable, *, strict: bool = False) -> None:
        self.table = table
        self.strict = strict
        # attribute → value → candidates in table order (several when routes differ by namespace)
        self._routes: dict[str, dict[str, list[_Candidate]]] = {}
        for position, route in enumerate(table.routes):
            by_value = self._routes.setdefault(route.attribute, {})
            by_value.setdefault(route.value, []).append(
                _Candidate(position, route.namespace, Destination("project", project=route.project))
            )
        self._refused: _Listing = {}
        for position, refused in enumerate(table.refused):
            self._refused.setdefault(refused.attribute, {}).setdefault(refused.value, []).append(
                (position, refused.namespace)
            )
        self._pending: _Listing = {}
        for position, pending in enumerate(table.pending):
            self._pending.setdefault(pending.attribute, {}).setdefault(pending.value, []).append(
                (position, pending.namespace)
            )
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
        best: _Candidate | None = None
        best_attribute = best_value = None
        for attribute, by_value in self._routes.items():
            value = attributes.get(attribute)
            if not isinstance(value, str):
                continue
            for candidate in by_value.get(value, ()):
                if best is not None and candidate.position >= best.position:
                    break
                if candidate.namespace is None or candidate.namespace == namespace or loose:
                    best, best_attribute, best_value = candidate, attribute, value
                    break
        if best is not None:
            return best.destination, best_attribute, best_value

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
            for position, scope in by_value.get(value, ()):
                if found is not None and position >= found[0]:
                    break
                if scope is None or scope == namespace or loose:
                    found = (position, attribute, value)
                    break
        return None if found is None else (found[1], found[2])

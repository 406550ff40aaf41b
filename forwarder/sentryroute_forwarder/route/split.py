"""Splitting one request into per-destination parts (receive → route → queue).

Pure: the same body, router and origin always give the same result, so the queue also uses it to re-route held
or orphaned payloads after a table change. A resource is never split; parts keep the input order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sentryroute.routes import NAMESPACE_ATTRIBUTE
from sentryroute_forwarder.model import Destination, RoutedPart, Signal
from sentryroute_forwarder.route.origin import ATTRIBUTE, Origin
from sentryroute_forwarder.route.rewrite import set_namespace
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.wire import ResourceRecord, parse_records

__all__ = ["DroppedValue", "SplitResult", "split_records", "split_request"]


@dataclass(frozen=True, slots=True)
class DroppedValue:
    """A value whose resources were dropped, for rate-limited log lines."""

    reason: str
    attribute: str | None
    value: str | None
    items: int


@dataclass(slots=True)
class SplitResult:
    parts: list[RoutedPart] = field(default_factory=list)  # one per destination and value, in input order
    dropped: dict[str, int] = field(default_factory=dict)  # reason → items dropped (never in `parts`)
    dropped_values: list[DroppedValue] = field(default_factory=list)
    items: int = 0  # every span or log record of the request
    notes: list[str] = field(default_factory=list)  # details for partial_success (why records were rejected)
    rewrites: int = 0  # resources whose k8s.namespace.name was corrected (peer mode)

    @property
    def rejected(self) -> int:
        """Items to report in `partial_success` (dropped here; held items are not rejected)."""
        return sum(self.dropped.values())


@dataclass(slots=True)
class _Group:
    destination: Destination
    attribute: str | None
    value: str | None
    namespace: str | None
    slices: list[memoryview | bytes] = field(default_factory=list)
    items: int = 0


def split_request(signal: Signal, body: bytes, router: Router, origin: Origin = ATTRIBUTE) -> SplitResult:
    """Group the resources of an Export*ServiceRequest body by their routing decision.

    For data validated at intake (re-routing queued data): records are read with the lite parse. Raises
    `MalformedPayload` for a body that is not a valid request.
    """
    return split_records(signal, body, parse_records(body, keys=router.keys), router, origin)


def split_records(
    signal: Signal, body: bytes, records: list[ResourceRecord], router: Router, origin: Origin = ATTRIBUTE
) -> SplitResult:
    """Group `records` (resource records of `body`, e.g. those that passed validation) by routing decision.

    `origin` says whose namespace the resources are routed by (SPEC §6.1); a resource whose own claim
    contradicts it is rewritten.
    """
    groups: dict[tuple[Destination, str | None, str | None], _Group] = {}
    result = SplitResult()
    for record in records:
        claimed = record.attributes.get(NAMESPACE_ATTRIBUTE)
        namespace = origin.resource_namespace(claimed)
        destination, attribute, value = router.decide(record.attributes, namespace)
        # Parts remember their namespace only in peer mode (re-routing, reports); in attribute mode the
        # resources' own claims say it, and grouping by it would only split requests further.
        scope = namespace if router.strict else None
        group = groups.get((destination, value, scope))
        if group is None:
            group = groups[(destination, value, scope)] = _Group(destination, attribute, value, scope)
        if origin.needs_rewrite(claimed):
            group.slices.append(set_namespace(record.data, namespace))
            result.rewrites += 1
        else:
            group.slices.append(record.data)
        group.items += record.items
        result.items += record.items

    for group in groups.values():
        if group.destination.kind == "drop":
            reason = group.destination.reason or "unrouted"
            result.dropped[reason] = result.dropped.get(reason, 0) + group.items
            result.dropped_values.append(DroppedValue(reason, group.attribute, group.value, group.items))
            continue
        if len(groups) == 1 and not result.rewrites and sum(len(s) for s in group.slices) == len(body):
            payload = bytes(body)  # the body is exactly its records: no copy for bytes input
        else:
            payload = b"".join(group.slices)
        result.parts.append(
            RoutedPart(
                signal=signal,
                destination=group.destination,
                payload=payload,
                items=group.items,
                resources=len(group.slices),
                attribute=group.attribute,
                value=group.value,
                namespace=group.namespace,
            )
        )
    return result

"""Standard Kubernetes LabelSelectors of a route's spec (`podSelector`, `namespaceSelector`), matched with the
shared `sentryroute.selectors` (the same requirements the emulated API and `--trusted-relays` use)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sentryroute.selectors import LabelSelector, Requirement, SelectorError, label_selector_from_spec

#: Selects nothing (`x in ()`): what a malformed selector becomes where it is not refused (a typo must not widen).
NOTHING = LabelSelector((Requirement("x", "in", frozenset()),))


def compile_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """`selector` as a matcher; an absent or empty one matches everything, a malformed one nothing."""
    if not selector:
        return LabelSelector()
    try:
        return label_selector_from_spec(selector)
    except SelectorError:
        return NOTHING


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """True when `labels` satisfy `selector` (see `compile_selector`)."""
    return compile_selector(selector).matches(labels)

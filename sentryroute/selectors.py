"""Label and field selectors, parsed and matched the way kube-apiserver does (shared: the emulated API and
the forwarder's `--trusted-relays` use the same parser).

kmock ignores `?labelSelector=`; kopf and the `kubernetes` client rely on the server filtering lists and
watches, so the emulator parses both selector languages here and answers 400 on a malformed one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FieldSelector", "LabelSelector", "SelectorError", "parse_field_selector", "parse_label_selector"]

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists", "gt", "lt"]

_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"\s*({_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*")
_EQUALITY_RE = re.compile(rf"\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*")
_NUMERIC_RE = re.compile(rf"\s*({_KEY})\s*([<>])\s*(-?[0-9]+)\s*")
_EXISTS_RE = re.compile(rf"\s*(!?)\s*({_KEY})\s*")
_FIELD_RE = re.compile(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*([^,]*?)\s*")


class SelectorError(ValueError):
    """A selector the API server would reject with 400 Bad Request."""


@dataclass(frozen=True)
class Requirement:
    """One comma-separated term of a label selector."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return value in self.values
            case "!=" | "notin":
                return value not in self.values  # an absent key satisfies `!=` and `notin`, as in Kubernetes
            case "exists":
                return value is not None
            case "!exists":
                return value is None
            case "gt" | "lt":
                if value is None or not re.fullmatch(r"-?[0-9]+", value):
                    return False
                (bound,) = self.values
                return int(value) > int(bound) if self.operator == "gt" else int(value) < int(bound)


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold (Kubernetes ANDs the terms); no requirements select everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(requirement.matches(labels or {}) for requirement in self.requirements)


@dataclass(frozen=True)
class FieldSelector:
    """`path=value` / `path!=value` terms on dotted object fields, e.g. `metadata.name=x`."""

    terms: tuple[tuple[str, bool, str], ...] = ()  # (dotted path, must be equal, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field_text(obj, path) == value) is equal for path, equal, value in self.terms)


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3` into a `LabelSelector`; raise `SelectorError`."""
    if not text or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_parse_requirement(term) for term in _split_terms(text)))


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse `metadata.name=x,status.phase!=Running` into a `FieldSelector`; raise `SelectorError`."""
    if not text or not text.strip():
        return FieldSelector()
    terms = []
    for term in text.split(","):
        match = _FIELD_RE.fullmatch(term)
        if match is None:
            raise SelectorError(f"invalid field selector term {term!r}")
        path, operator, value = match.groups()
        terms.append((path, operator != "!=", value))
    return FieldSelector(tuple(terms))


def _split_terms(text: str) -> list[str]:
    """Split on the commas that separate terms, not on those inside `in (a,b)`."""
    terms, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parenthesis in label selector {text!r}")
        elif char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    if depth:
        raise SelectorError(f"unbalanced parenthesis in label selector {text!r}")
    terms.append(text[start:])
    return terms


def _parse_requirement(term: str) -> Requirement:
    if match := _SET_RE.fullmatch(term):
        key, operator, raw_values = match.groups()
        values = [value.strip() for value in raw_values.split(",")]
        if not all(re.fullmatch(_VALUE, value) for value in values):
            raise SelectorError(f"invalid value in label selector term {term!r}")
        return Requirement(key, "in" if operator == "in" else "notin", frozenset(values))
    if match := _EQUALITY_RE.fullmatch(term):
        key, operator, value = match.groups()
        return Requirement(key, "!=" if operator == "!=" else "=", frozenset({value}))
    if match := _NUMERIC_RE.fullmatch(term):
        key, operator, value = match.groups()
        return Requirement(key, "gt" if operator == ">" else "lt", frozenset({value}))
    if match := _EXISTS_RE.fullmatch(term):
        negation, key = match.groups()
        return Requirement(key, "!exists" if negation else "exists")
    raise SelectorError(f"invalid label selector term {term!r}")


def _field_text(obj: Mapping[str, Any], path: str) -> str:
    """The field's value as the API server compares it: a string, empty when absent."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

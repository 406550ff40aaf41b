"""Label and field selectors, parsed and matched the way kube-apiserver does (shared: the emulated API, the
forwarder's `--trusted-relays` and the operator's `podSelector` / `namespaceSelector` use the same matching).

Two spellings of a label selector come in: the text form of `?labelSelector=` and `--trusted-relays`
(`parse_label_selector`) and the structured `metav1.LabelSelector` of a spec (`label_selector_from_spec`:
`matchLabels` and `matchExpressions`); both become the same `Requirement`s.

kmock ignores `?labelSelector=`; kopf and the `kubernetes` client rely on the server filtering lists and
watches, so the emulator parses both selector languages here and answers 400 on a malformed one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "label_selector_from_spec",
    "parse_field_selector",
    "parse_label_selector",
]

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


#: `matchExpressions` operators of a metav1.LabelSelector → the text form's operators.
_SPEC_OPERATORS: Mapping[str, Operator] = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def label_selector_from_spec(spec: Mapping[str, Any]) -> LabelSelector:
    """A structured `metav1.LabelSelector` (`matchLabels`, `matchExpressions`) as a `LabelSelector`.

    Raise `SelectorError` for what the API server rejects (an unknown operator; `In`/`NotIn` without values,
    `Exists`/`DoesNotExist` with values; a key or value that is no label): a typo must never widen a selection.
    An empty selector selects everything, as in Kubernetes.
    """
    requirements: list[Requirement] = []
    match_labels = spec.get("matchLabels") or {}
    expressions = spec.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError("matchLabels must be a map and matchExpressions a list")
    for key, value in match_labels.items():
        requirements.append(Requirement(_label_key(key), "=", frozenset({_label_value(value)})))
    for expression in expressions:
        if not isinstance(expression, Mapping):
            raise SelectorError("each matchExpressions entry must be a map")
        operator = _SPEC_OPERATORS.get(str(expression.get("operator")))
        if operator is None:
            raise SelectorError(f"unknown matchExpressions operator {str(expression.get('operator'))[:40]!r}")
        values = expression.get("values") or []
        if not isinstance(values, list):
            raise SelectorError("matchExpressions values must be a list")
        if (operator in ("in", "notin")) != bool(values):
            raise SelectorError("values must be non-empty for In and NotIn and empty for Exists and DoesNotExist")
        key = _label_key(expression.get("key"))
        requirements.append(Requirement(key, operator, frozenset(_label_value(v) for v in values)))
    return LabelSelector(tuple(requirements))


def _label_key(key: object) -> str:
    if not isinstance(key, str) or len(key) > 317 or not re.fullmatch(_KEY, key):
        raise SelectorError(f"invalid label key {str(key)[:80]!r}")
    return key


def _label_value(value: object) -> str:
    if not isinstance(value, str) or len(value) > 63 or not re.fullmatch(_VALUE, value):
        raise SelectorError(f"invalid label value {str(value)[:80]!r}")
    return value


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

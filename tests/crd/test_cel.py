"""Every CEL rule (`x-kubernetes-validations`) of the CRD, evaluated on valid and invalid values.

Evaluator: cel-python (`celpy`), a Python implementation of the CEL spec. The API server uses cel-go with the
Kubernetes libraries; the rules here stick to the common core (has, size, all, matches, in, ternary) that both
implement the same way. A rule added to the CRD without cases here fails test_every_rule_has_cases.
"""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tests.crd.schema_tools import open_api_schema, walk

RULES = {
    path: [rule["rule"] for rule in node["x-kubernetes-validations"]]
    for path, node in walk(open_api_schema())
    if "x-kubernetes-validations" in node
}

# path -> [(value of `self` at that path, whether the rule accepts it)]
CASES: dict[str, list[tuple[Any, bool]]] = {
    ".spec": [
        ({}, True),
        ({"attribute": "service.name", "autoProvision": {"enabled": True, "team": "t"}}, True),
        ({"autoProvision": {"enabled": True, "team": "t"}}, True),  # attribute defaults to service.name
        ({"attribute": "k8s.pod.name", "mapping": {"a": "b"}}, True),
        ({"attribute": "k8s.pod.name", "autoProvision": {"enabled": False}}, True),
        ({"attribute": "k8s.pod.name", "autoProvision": {}}, True),
        ({"attribute": "k8s.pod.name", "autoProvision": {"enabled": True, "team": "t"}}, False),
    ],
    ".spec.mapping": [
        ({}, True),
        ({"orders-service": "orders", "x" * 255: "y"}, True),
        ({"": "orders"}, False),
        ({"x" * 256: "y"}, False),
    ],
    ".spec.mapping[*]": [("orders", True), ("123abc", True), ("a1", True), ("42", False), ("0", False)],
    ".spec.fallbackProject": [("catch-all", True), ("7days", True), ("404", False)],
    ".spec.autoProvision": [
        ({}, True),
        ({"enabled": False}, True),
        ({"enabled": True, "team": "backend"}, True),
        ({"team": "backend"}, True),
        ({"enabled": True}, False),
    ],
    ".spec.autoProvision.team": [("backend", True), ("team-1", True), ("1", False)],
    ".spec.autoProvision.podSelector.matchExpressions[]": [
        ({"key": "a", "operator": "In", "values": ["x"]}, True),
        ({"key": "a", "operator": "NotIn", "values": ["x", "y"]}, True),
        ({"key": "a", "operator": "Exists"}, True),
        ({"key": "a", "operator": "DoesNotExist", "values": []}, True),
        ({"key": "a", "operator": "In"}, False),
        ({"key": "a", "operator": "NotIn", "values": []}, False),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, False),
    ],
}


def evaluate(rule: str, value: Any) -> bool:
    environment = celpy.Environment()
    program = environment.program(environment.compile(rule))
    return bool(program.evaluate({"self": celpy.json_to_cel(value)}))


def test_every_rule_has_cases():
    assert RULES.keys() == CASES.keys()


@pytest.mark.parametrize(
    ("path", "value", "accepted"),
    [(path, value, accepted) for path, cases in CASES.items() for value, accepted in cases],
    ids=[f"{path}-{index}" for path, cases in CASES.items() for index in range(len(cases))],
)
def test_rule(path: str, value: Any, accepted: bool):
    assert all(evaluate(rule, value) for rule in RULES[path]) is accepted


def test_rules_carry_messages():
    for _, node in walk(open_api_schema()):
        for rule in node.get("x-kubernetes-validations", ()):
            assert rule.get("message"), rule["rule"]

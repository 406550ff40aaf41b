"""OpenAPI v3 validation of custom resources: the keyword subset a CRD schema uses."""

from __future__ import annotations

import pytest

from sentryroute.kube.validation import validation_errors

SCHEMA = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "maxProperties": 3,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "count": {"type": "integer", "minimum": 0, "maximum": 9},
                "ratio": {"type": "number"},
                "on": {"type": "boolean"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 2}},
                "maybe": {"type": "string", "nullable": True},
            },
        },
    },
}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"name": "abc", "count": 9},
        {"ratio": 1},
        {"port": "http"},
        {"port": 80},
        {"tags": ["x", "yz"]},
        {"maybe": None},
    ],
)
def test_valid(spec: dict):
    assert validation_errors(SCHEMA, {"spec": spec}) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"name": "ABC"}, "spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'"),
        ({"name": "abcdef"}, "spec.name: Too long: may not be more than 5 characters"),
        ({"name": ""}, "spec.name: Invalid value: 0: spec.name in body should have at least 1 characters"),
        ({"mode": "c"}, 'spec.mode: Unsupported value: "c": supported values: "a", "b"'),
        ({"count": 10}, "spec.count: Invalid value: 10: spec.count in body should be <= 9"),
        ({"count": "1"}, 'spec.count: Invalid value: "1": spec.count in body must be of type integer'),
        ({"count": True}, "spec.count: Invalid value: True: spec.count in body must be of type integer"),
        ({"on": "yes"}, 'spec.on: Invalid value: "yes": spec.on in body must be of type boolean'),
        ({"port": 1.5}, "spec.port: Invalid value: 1.5: spec.port in body must be of type int-or-string"),
        ({"tags": ["a", "b", "c"]}, "spec.tags: Too long: may not be more than 2 items"),
        ({"tags": ["long"]}, "spec.tags[0]: Too long: may not be more than 3 characters"),
        ({"labels": {"k": "long"}}, "spec.labels.k: Too long: may not be more than 2 characters"),
        ({"name": "a", "mode": "a", "count": 1, "on": True}, "spec: Too long: may not be more than 3 properties"),
        ({"name": None}, 'spec.name: Invalid value: "null": spec.name in body must not be null'),
    ],
)
def test_invalid(spec: dict, expected: str):
    assert expected in validation_errors(SCHEMA, {"spec": spec})


def test_required():
    assert validation_errors(SCHEMA, {}) == ["spec: Required value"]

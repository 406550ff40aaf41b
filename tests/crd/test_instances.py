"""SentryRoute instances against the CRD's openAPIV3Schema with jsonschema (Draft 7).

Draft 7 ignores the `x-kubernetes-*` keys, so CEL rules are exercised in test_cel.py. Unknown fields are checked
with the strict variant of the schema (what `kubectl apply --validate=strict` reports).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest

from tests.crd.examples import SPEC_EXAMPLE
from tests.crd.schema_tools import open_api_schema, strict_schema


def with_spec(**changes: Any) -> dict[str, Any]:
    route = copy.deepcopy(SPEC_EXAMPLE)
    route["spec"].update(changes)
    return route


def with_auto(**changes: Any) -> dict[str, Any]:
    route = copy.deepcopy(SPEC_EXAMPLE)
    route["spec"]["autoProvision"].update(changes)
    return route


def with_status(**changes: Any) -> dict[str, Any]:
    route = copy.deepcopy(SPEC_EXAMPLE)
    route["status"].update(changes)
    return route


VALID = {
    "spec example": SPEC_EXAMPLE,
    "empty spec (all defaults)": {"spec": {}},
    "mapping only": {"spec": {"mapping": {"Legacy API": "legacy_api-1"}}},
    "100-character slug": with_spec(mapping={"a": "s" * 100}),
    "other attribute": {"spec": {"attribute": "k8s.deployment.name", "mapping": {"x": "y"}}},
    "match expressions": with_auto(
        podSelector={"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["a", "b"]}]}
    ),
    "namespace template": with_auto(projectTemplate="{namespace}-{service}"),
    "compound duration": with_auto(staleAfter="1h30m"),
    "delete policy": with_spec(deletionPolicy="Delete"),
    "no status": {"spec": {"mapping": {"a": "b"}}},
}

INVALID = {
    "no spec": {"metadata": {"name": "x"}},
    "uppercase slug": with_spec(mapping={"a": "Orders"}),
    "slug with a slash": with_spec(mapping={"a": "../etc"}),
    "101-character slug": with_spec(mapping={"a": "s" * 101}),
    "empty slug": with_spec(mapping={"a": ""}),
    "non-string slug": with_spec(mapping={"a": 42}),
    "bad fallback": with_spec(fallbackProject="Catch All"),
    "bad connection": with_spec(connection="Prod_EU"),
    "bad deletion policy": with_spec(deletionPolicy="Orphan"),
    "bad attribute": with_spec(attribute=" service.name"),
    "bad derive": with_auto(derive="guess"),
    "bad team": with_auto(team="Back End"),
    "51-character team": with_auto(team="t" * 51),
    "bad platform": with_auto(platform="Python 3"),
    "unknown placeholder": with_auto(projectTemplate="{service}-{cluster}"),
    "bad duration": with_auto(staleAfter="1 day"),
    "bare number duration": with_auto(staleAfter="3600"),
    "enabled not boolean": with_auto(enabled="yes"),
    "bad operator": with_auto(podSelector={"matchExpressions": [{"key": "a", "operator": "Contains"}]}),
    "expression without key": with_auto(podSelector={"matchExpressions": [{"operator": "Exists"}]}),
    "too many mappings": with_spec(mapping={f"service-{i}": f"project-{i}" for i in range(1001)}),
    "bad project state": with_status(projects=[{"value": "a", "state": "Unknown"}]),
    "project without state": with_status(projects=[{"value": "a"}]),
    "non-numeric project id": with_status(projects=[{"value": "a", "state": "Ready", "id": "abc"}]),
    "bad condition status": with_status(
        conditions=[{"type": "Ready", "status": "Yes", "reason": "R", "message": "", "lastTransitionTime": "t"}]
    ),
    "condition without reason": with_status(
        conditions=[{"type": "Ready", "status": "True", "message": "", "lastTransitionTime": "t"}]
    ),
    "negative project count": with_status(projectCount=-1),
}

UNKNOWN_FIELDS = {
    "typo in spec": with_spec(mapings={"a": "b"}),
    "typo in autoProvision": with_auto(enable=True),
    "typo in a project entry": with_status(projects=[{"value": "a", "state": "Ready", "slg": "b"}]),
}


@pytest.mark.parametrize("route", VALID.values(), ids=VALID.keys())
def test_valid_routes_are_accepted(route: dict[str, Any]):
    jsonschema.Draft7Validator(strict_schema(open_api_schema())).validate(route)


@pytest.mark.parametrize("route", INVALID.values(), ids=INVALID.keys())
def test_invalid_routes_are_rejected(route: dict[str, Any]):
    assert list(jsonschema.Draft7Validator(open_api_schema()).iter_errors(route))


@pytest.mark.parametrize("route", UNKNOWN_FIELDS.values(), ids=UNKNOWN_FIELDS.keys())
def test_unknown_fields_are_reported_by_strict_validation(route: dict[str, Any]):
    assert jsonschema.Draft7Validator(open_api_schema()).is_valid(route)  # the API server would prune them
    assert not jsonschema.Draft7Validator(strict_schema(open_api_schema())).is_valid(route)

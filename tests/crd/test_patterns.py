"""Every `pattern` in the CRD compiles with RE2 (the API server uses Go's RE2: no look-around, no backreferences)
and means what the Python side means: the slug rule of sentryroute.routes, the durations of sentryroute.durations."""

from __future__ import annotations

import re

import pytest
import re2

from sentryroute.durations import parse_duration
from sentryroute.routes import DERIVED_SLUG_RE, USER_SLUG_RE
from tests.crd.schema_tools import open_api_schema, walk

PATTERNS = {path: node["pattern"] for path, node in walk(open_api_schema()) if "pattern" in node}
SPEC = ".spec"


def test_patterns_are_found():
    assert {f"{SPEC}.mapping[*]", f"{SPEC}.fallbackProject", f"{SPEC}.autoProvision.staleAfter"} <= PATTERNS.keys()


@pytest.mark.parametrize("path", PATTERNS)
def test_pattern_compiles_with_re2_and_uses_no_look_around(path: str):
    pattern = PATTERNS[path]
    re2.compile(pattern)
    assert not re.search(r"\(\?<?[=!]|\\[1-9]", pattern), f"{path}: look-around or backreference in {pattern!r}"
    assert pattern.startswith("^") and pattern.endswith("$"), f"{path}: OpenAPI patterns are not anchored by default"


def test_user_slugs_match_the_shared_rule():
    for path in (f"{SPEC}.mapping[*]", f"{SPEC}.fallbackProject", ".status.projects[].slug"):
        assert PATTERNS[path] == f"^{USER_SLUG_RE.pattern}$"
    assert PATTERNS[f"{SPEC}.autoProvision.team"] == f"^{DERIVED_SLUG_RE.pattern}$"  # Sentry's 50-character team slugs


@pytest.mark.parametrize(
    ("path", "good", "bad"),
    [
        (f"{SPEC}.mapping[*]", ["orders", "a_b-c", "123abc", "s" * 100], ["", "Orders", "a b", "a/b", "é", "s" * 101]),
        (f"{SPEC}.attribute", ["service.name", "k8s.pod.name", "deployment.environment"], ["", ".x", "a b", "ü"]),
        (f"{SPEC}.connection", ["default", "eu-1"], ["", "-eu", "eu-", "EU", "e_u"]),
        (f"{SPEC}.autoProvision.platform", ["python", "javascript-react", "other"], ["", "Python", "-x"]),
        (f"{SPEC}.autoProvision.projectTemplate", ["{service}", "{namespace}-{service}", "x"], ["{svc}", "{", "a}"]),
        (
            f"{SPEC}.autoProvision.staleAfter",
            ["24h", "30m", "1h30m", "250ms", "1.5h", "7d"],
            ["", "24", "1 h", "h", "1y"],
        ),
        (".status.projects[].id", ["42", "4508000000000000"], ["", "a1", "-1"]),
        (".status.conditions[].type", ["Ready", "example.com/Synced"], ["", "-x", "a b"]),
        (".status.conditions[].reason", ["Provisioned", "SlugReserved", "A_b:c,d"], ["", "1a", "a-b"]),
    ],
)
def test_pattern_accepts_and_rejects_like_python(path: str, good: list[str], bad: list[str]):
    compiled = re2.compile(PATTERNS[path])
    for value in good:
        assert compiled.search(value) and re.search(PATTERNS[path], value), (path, value)
    for value in bad:
        assert not compiled.search(value) and not re.search(PATTERNS[path], value), (path, value)


@pytest.mark.parametrize("value", ["24h", "30m", "1h30m", "250ms", "1.5h", "7d", "10s"])
def test_durations_the_crd_accepts_are_parsed_by_the_operator(value: str):
    assert re2.search(PATTERNS[f"{SPEC}.autoProvision.staleAfter"], value)
    assert parse_duration(value) > 0

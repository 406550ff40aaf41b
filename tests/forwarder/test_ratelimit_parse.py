"""`X-Sentry-Rate-Limits` / `Retry-After` parsing: the upstream exporter's table (reference Part B §4), with
categories mapped to what OTLP traces and logs are counted as (Part A §3.2)."""

from __future__ import annotations

import email.utils

import pytest
from multidict import CIMultiDict
from sentryroute_forwarder.export.ratelimit import (
    QuotaLimit,
    RateLimits,
    limits_from_response,
    org_of,
    parse_rate_limits,
    parse_retry_after,
)
from sentryroute_forwarder.model import Signal

T, L = Signal.TRACES, Signal.LOGS
BOTH = frozenset({T, L})


def merged(header: str) -> dict[Signal, float]:
    """Seconds each signal is limited for after applying the header (now = 0)."""
    limits = RateLimits()
    limits.impose("acme/p", parse_rate_limits(header), now=0.0)
    return {s: limits.until("acme/p", s, now=0.0) for s in Signal if limits.until("acme/p", s, now=0.0)}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", {}),
        (",", {}),
        (":", {}),
        (":::", {}),
        ("::,,:,", {}),
        (":,:;;;:", {}),
        ("1", {T: 1, L: 1}),
        ("2::ignored_scope:ignored_reason", {T: 2, L: 2}),
        ("4:log_item", {L: 4}),
        ("5:log_item;transaction", {T: 5, L: 5}),
        ("8:log_item;default;unknown", {L: 8}),
        ("30:log_item:scope1, 20:log_item:scope2, 40::", {T: 40, L: 40}),
        ("30:log_item:scope1, 20:log_item:scope2", {L: 30}),
        # Where upstream loses data: a span quota limits traces (upstream ignored it and kept sending).
        ("7:span:project", {T: 7}),
        ("7:span_indexed:key", {T: 7}),
        ("9:log_byte:organization", {L: 9}),
        ("60:error:key", {}),
        ("60:transaction:key, 2700:default;error;security:organization", {T: 60}),
        ("  3 : LOG_ITEM : project ", {L: 3}),
        ("2700:metric_bucket:organization:quota_exceeded:custom", {}),
    ],
)
def test_header_table(header: str, expected: dict[Signal, float]) -> None:
    assert merged(header) == expected


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [
        ("0", 0),
        ("1", 1),
        ("60", 60),
        ("3.1", 4),
        ("3.5", 4),
        ("3.9", 4),
        ("1e1", 10),
        ("100000000000000000", 0),  # overflow: "no wait", as upstream
        ("-Inf", 0),
        ("-0", 0),
        ("-1", 0),
        ("Inf", 0),
        ("NaN", 0),
    ],
)
def test_retry_after_field(retry_after: str, seconds: float) -> None:
    assert parse_rate_limits(f"{retry_after}::project") == [QuotaLimit(seconds, BOTH)]


@pytest.mark.parametrize("retry_after", ["", "invalid", "6 0", "1_0", "0x10"])
def test_unparsable_retry_after_skips_the_entry(retry_after: str) -> None:
    assert parse_rate_limits(f"{retry_after}:span:project, 5:log_item:project") == [QuotaLimit(5, frozenset({L}))]


def test_organization_scope_is_kept() -> None:
    assert parse_rate_limits("5::organization, 6:span:project") == [
        QuotaLimit(5, BOTH, organization=True),
        QuotaLimit(6, frozenset({T})),
    ]


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in values.items()})


@pytest.mark.parametrize(
    ("status", "given", "expected"),
    [
        (200, {}, []),
        (202, {"Retry_After": "100"}, []),  # Retry-After counts only on a 429
        (200, {"Retry_After": "100", "X_Sentry_Rate_Limits": "3:span:project"}, [QuotaLimit(3, frozenset({T}))]),
        (202, {"x-sentry-rate-limits": "3:log_item:project"}, [QuotaLimit(3, frozenset({L}))]),
        (429, {}, [QuotaLimit(60, frozenset({T}))]),
        (429, {"Retry_After": "100"}, [QuotaLimit(100, frozenset({T}))]),
        (429, {"Retry_After": "100", "X_Sentry_Rate_Limits": "3:span:project"}, [QuotaLimit(3, frozenset({T}))]),
        # Only unknown categories: 60 s (default) for what was sent, as upstream's "all +60 s" but not stopping logs.
        (429, {"X_Sentry_Rate_Limits": "60:error:key"}, [QuotaLimit(60, frozenset({T}))]),
        # The limit names logs only, yet the traces request was refused (Relay: any active limit): wait too.
        (
            429,
            {"X_Sentry_Rate_Limits": "20:log_item:project", "Retry_After": "20"},
            [QuotaLimit(20, frozenset({L})), QuotaLimit(20, frozenset({T}))],
        ),
        (429, {"Retry_After": ""}, [QuotaLimit(60, frozenset({T}))]),
        (429, {"Retry_After": "x"}, [QuotaLimit(60, frozenset({T}))]),
        (429, {"Retry_After": "-1"}, [QuotaLimit(60, frozenset({T}))]),
        (429, {"Retry_After": "5.0"}, [QuotaLimit(60, frozenset({T}))]),
    ],
)
def test_limits_from_response(status: int, given: dict[str, str], expected: list[QuotaLimit]) -> None:
    assert limits_from_response(status, headers(**given), sent=T, default=60) == expected


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 1337, usegmt=True)
    assert parse_retry_after(date, wall_now=now) == pytest.approx(1337)
    assert parse_retry_after("1337") == 1337
    limits = limits_from_response(429, headers(Retry_After=date), sent=L, default=60, wall_now=now)
    assert [(limit.seconds, limit.signals) for limit in limits] == [(pytest.approx(1337), frozenset({L}))]


def test_deadlines_merge_and_expire() -> None:
    limits = RateLimits()
    grown = limits.impose("acme/p", [QuotaLimit(10, frozenset({L}))], now=100.0)
    assert grown == {L: 10}
    # The all-categories limit applies to every signal; the later deadline wins.
    grown = limits.impose("acme/p", [QuotaLimit(5, BOTH)], now=100.0)
    assert grown == {T: 5}
    assert limits.until("acme/p", L, now=101.0) == 110.0
    assert limits.until("acme/p", T, now=101.0) == 105.0
    assert limits.impose("acme/p", [QuotaLimit(3, frozenset({L}))], now=101.0) == {}
    assert limits.until("acme/p", T, now=105.0) == 0.0
    assert limits.until("acme/p", L, now=110.0) == 0.0
    assert limits.until("acme/other", L, now=101.0) == 0.0


def test_organization_scope_covers_every_project_of_the_org() -> None:
    limits = RateLimits()
    limits.impose("acme/a", [QuotaLimit(30, frozenset({T}), organization=True)], now=0.0)
    assert limits.until("acme/b", T, now=1.0) == 30.0
    assert limits.until("acme/b", L, now=1.0) == 0.0
    assert limits.until("globex/a", T, now=1.0) == 0.0
    assert org_of("conn:acme/shop") == "conn:acme"
    assert org_of("acme/shop") == "acme"


def test_forgetting_a_recreated_project_keeps_org_limits() -> None:
    limits = RateLimits()
    limits.impose(
        "acme/a", [QuotaLimit(30, frozenset({T})), QuotaLimit(10, frozenset({L}), organization=True)], now=0.0
    )
    limits.forget("acme/a")
    assert limits.until("acme/a", T, now=1.0) == 0.0
    assert limits.until("acme/a", L, now=1.0) == 10.0

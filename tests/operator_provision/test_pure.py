"""Table-driven tests of the pure pieces: Link parsing, 429 waits, slug checks, key choice, endpoint URLs."""

from __future__ import annotations

import pytest
from sentryroute_operator.provision import (
    EndpointError,
    InvalidSlug,
    SentryKey,
    SentryProject,
    choose_key,
    ingest_endpoint,
)
from sentryroute_operator.provision.pagination import next_cursor
from sentryroute_operator.provision.paths import api_path, checked_slug, segment
from sentryroute_operator.provision.ratelimit import rate_limit_wait

SENTRY_LINK = (
    '<https://sentry.io/api/0/organizations/acme/projects/?&cursor=0:0:1>; rel="previous"; results="false"; '
    'cursor="0:0:1", <https://sentry.io/api/0/organizations/acme/projects/?&cursor=0:100:0>; rel="next"; '
    'results="true"; cursor="0:100:0"'
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (SENTRY_LINK, "0:100:0"),
        (SENTRY_LINK.replace('results="true"', 'results="false"'), None),
        (SENTRY_LINK.replace('cursor="0:100:0"', 'cursor=""'), "0:100:0"),  # falls back to the URL's cursor
        ('<https://evil.example/x?cursor=1:2:0>; rel="next"; results="true"', "1:2:0"),  # only the cursor is used
        ('<https://sentry.io/x>; rel="next"; results="true"; cursor=""', None),
        ('<https://sentry.io/x?cursor=a b>; rel="next"; results="true"', None),  # not a usable cursor
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_next_cursor(header: str | None, expected: str | None) -> None:
    assert next_cursor(header) == expected


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Sentry-Rate-Limit-Reset": str(NOW + 7)}, 7.0),
        ({"X-Sentry-Rate-Limit-Reset": str(NOW - 5)}, 0.0),  # already reset: clamp at 0
        ({"X-Sentry-Rate-Limit-Reset": str(NOW + 5000)}, 600.0),  # clamp at max_wait
        ({"X-Sentry-Rate-Limit-Reset": "soon", "Retry-After": "3"}, 3.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:40 GMT"}, 20.0),
        ({}, 60.0),
    ],
)
def test_rate_limit_wait(headers: dict[str, str], expected: float) -> None:
    assert rate_limit_wait(headers, max_wait=600.0, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "bad", ["../../x", "a?b=c", "a/b", "ÜMLAUT", "café", "x" * 101, "12345", "", "A", "a b", "%2e"]
)
def test_hostile_slugs_rejected(bad: str) -> None:
    with pytest.raises(InvalidSlug) as info:
        checked_slug(bad, what="project")
    assert "\n" not in str(info.value)


def test_path_segments_are_escaped_one_by_one() -> None:
    assert api_path("projects", "acme", "my_proj-1", "keys") == "/api/0/projects/acme/my_proj-1/keys/"
    # Defence in depth behind validation: whatever reaches `segment` stays one segment.
    assert segment("../../organizations/foo/members") == "..%2F..%2Forganizations%2Ffoo%2Fmembers"
    assert segment("a?b=c#d") == "a%3Fb%3Dc%23d"
    assert segment("..") == "%2E%2E"


def _key(
    public: str, *, name: str = "Default", active: bool = True, created: str = "2026-01-01T00:00:00.000Z"
) -> SentryKey:
    return SentryKey(
        public=public,
        name=name,
        is_active=active,
        date_created=created,
        dsn_public=f"https://{public}@o1.ingest.sentry.io/42",
    )


def test_choose_key_prefers_sentryroute_then_oldest_active() -> None:
    # Sentry lists newest first.
    newest = _key("c" * 32, created="2026-03-01T00:00:00.000Z")
    middle = _key("b" * 32, created="2026-02-01T00:00:00.000Z")
    oldest_inactive = _key("a" * 32, created="2026-01-01T00:00:00.000Z", active=False)
    assert choose_key([newest, middle, oldest_inactive]) == middle
    named = _key("d" * 32, name="sentryroute", created="2026-04-01T00:00:00.000Z")
    assert choose_key([named, newest, middle]) == named
    assert choose_key([_key("e" * 32, name="sentryroute", active=False), newest, middle]) == middle
    assert choose_key([oldest_inactive]) is None
    assert choose_key([]) is None


def test_choose_key_ties_follow_sentry_order() -> None:
    same = "2026-01-01T00:00:00.000Z"
    listing = [_key("b" * 32, created=same), _key("a" * 32, created=same)]  # "a" is older (listed last)
    assert choose_key(listing) == listing[1]
    assert choose_key(list(listing)) == choose_key(listing)


PROJECT = SentryProject(id="42", slug="checkout", name="checkout")
PUB = "0123456789abcdef0123456789abcdef"


def _dsn_key(dsn: str, *, traces: str | None = None, logs: str | None = None) -> SentryKey:
    return SentryKey(
        public=PUB, name="x", is_active=True, date_created="", dsn_public=dsn, otlp_traces=traces, otlp_logs=logs
    )


@pytest.mark.parametrize(
    ("dsn", "connection", "traces"),
    [
        (
            f"https://{PUB}@o1.ingest.sentry.io/42",
            "https://sentry.io",
            "https://o1.ingest.sentry.io/api/42/integration/otlp/v1/traces/",
        ),
        (
            f"http://{PUB}@sentry.local:9000/sentry/42",
            "http://sentry.local:9000/sentry",
            "http://sentry.local:9000/sentry/api/42/integration/otlp/v1/traces/",
        ),
    ],
)
def test_derived_endpoint_keeps_port_and_prefix(dsn: str, connection: str, traces: str) -> None:
    endpoint = ingest_endpoint(PROJECT, _dsn_key(dsn), connection_url=connection)
    assert endpoint.tracesUrl == traces
    assert endpoint.logsUrl == traces.replace("/traces/", "/logs/")
    assert endpoint.publicKey == PUB and endpoint.id == "42"


def test_given_otlp_urls_are_used_as_is() -> None:
    key = _dsn_key(
        f"https://{PUB}@o1.ingest.sentry.io/42",
        traces="https://o1.ingest.sentry.io/api/42/integration/otlp/v1/traces",
        logs="https://o1.ingest.sentry.io/api/42/integration/otlp/v1/logs",
    )
    endpoint = ingest_endpoint(PROJECT, key, connection_url="https://sentry.io")
    assert endpoint.tracesUrl == "https://o1.ingest.sentry.io/api/42/integration/otlp/v1/traces"
    assert endpoint.logsUrl == "https://o1.ingest.sentry.io/api/42/integration/otlp/v1/logs"


@pytest.mark.parametrize(
    ("dsn", "traces", "connection"),
    [
        (f"http://{PUB}@o1.ingest.sentry.io/42", None, "https://sentry.io"),  # downgrade to http
        (
            f"https://{PUB}@o1.ingest.sentry.io/42",
            "https://evil.example/api/42/integration/otlp/v1/traces",
            "https://sentry.io",
        ),
        (f"https://{PUB}@o1.ingest.sentry.io/42", "https://o1.ingest.sentry.io:8443/api/42/x", "https://sentry.io"),
        (f"https://{PUB}@o1.ingest.sentry.io/42", "http://o1.ingest.sentry.io/api/42/x", "https://sentry.io"),
        (f"https://{PUB}@o1.ingest.sentry.io/43", None, "https://sentry.io"),  # another project's DSN
        (f"https://{PUB}@o1.ingest.sentry.io:99999/42", None, "https://sentry.io"),
        ("ftp://x@o1.ingest.sentry.io/42", None, "http://sentry.local"),
    ],
)
def test_unsafe_endpoints_rejected(dsn: str, traces: str | None, connection: str) -> None:
    with pytest.raises(EndpointError):
        ingest_endpoint(PROJECT, _dsn_key(dsn, traces=traces), connection_url=connection)

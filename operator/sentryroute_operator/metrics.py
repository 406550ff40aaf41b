"""The operator's Prometheus metrics (served with `--metrics HOST:PORT`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROUTES_TABLE_BYTES = Gauge("sentryroute_routes_table_bytes", "Size of the last rendered routes table in bytes")
ROUTES_TABLE_NEAR_LIMIT = Gauge(
    "sentryroute_routes_table_near_limit", "1 when the routes table is at 80% or more of the ConfigMap limit"
)
ROUTES_TABLE_DROPPED_ENTRIES = Gauge(
    "sentryroute_routes_table_dropped_entries",
    "Entries (routes, pending, refused) left out of the last routes table to keep it under the ConfigMap limit",
)
ROUTES_TABLE_WRITES = Counter("sentryroute_routes_table_writes_total", "Routes table writes to the ConfigMap")
PROJECTS_CREATED = Counter("sentryroute_projects_created_total", "Sentry projects created by the operator")
PROVISIONING_FAILURES = Counter(
    "sentryroute_provisioning_failures_total", "Values whose project could not be provisioned", ["reason"]
)
ROUTES_TABLE_REVISION = Gauge(
    "sentryroute_routes_table_revision_info", "Revision of the routes table in the ConfigMap (value 1)", ["revision"]
)
PROJECTS_ADOPTED = Counter("sentryroute_projects_adopted_total", "Existing Sentry projects the operator adopted")
ROUTE_VALUES = Gauge(
    "sentryroute_route_values",
    "Attribute values of all SentryRoutes by provisioning state (status.projects)",
    ["state"],
)
SENTRY_API_RESPONSES = Counter(
    "sentryroute_sentry_api_responses_total",
    "Sentry Web API answers by org and HTTP status ('none': timeout or connection error)",
    ["org", "status"],
)
SENTRY_API_RATE_LIMITED_SECONDS = Counter(
    "sentryroute_sentry_api_rate_limited_seconds_total", "Seconds waited on Sentry Web API rate limits (429)", ["org"]
)


def publish_routes_revision(revision: str) -> None:
    """The one revision in the ConfigMap now: alerts compare it with the forwarders' `routes_revision_info`."""
    ROUTES_TABLE_REVISION.clear()
    ROUTES_TABLE_REVISION.labels(revision).set(1)

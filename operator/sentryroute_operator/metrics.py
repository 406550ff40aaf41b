"""The operator's Prometheus metrics (served with `--metrics HOST:PORT`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROUTES_TABLE_BYTES = Gauge("sentryroute_routes_table_bytes", "Size of the last rendered routes table in bytes")
ROUTES_TABLE_NEAR_LIMIT = Gauge(
    "sentryroute_routes_table_near_limit", "1 when the routes table is at 80% or more of the ConfigMap limit"
)
ROUTES_TABLE_WRITES = Counter("sentryroute_routes_table_writes_total", "Routes table writes to the ConfigMap")
PROJECTS_CREATED = Counter("sentryroute_projects_created_total", "Sentry projects created by the operator")
PROVISIONING_FAILURES = Counter(
    "sentryroute_provisioning_failures_total", "Values whose project could not be provisioned", ["reason"]
)

"""What the demo sets up and what it expects: the four routing scenarios of Sentry's exporter docs.

The Sentry side starts with the projects an organisation would already have; the Kubernetes side gets the
SentryRoutes and pods of `examples/`. Each demo service then sends telemetry, and `EXPECTED` says which project
must receive it (None: dropped as unrouted, and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ORG = "acme"
TEAM = "backend"
#: Projects that exist in Sentry before the demo starts (adopted, never created).
EXISTING_PROJECTS = (
    "payments-api",
    "payments-worker",
    "ecommerce-orders",
    "ecommerce-products",
    "ecommerce-gateway",
    "shop-catch-all",
    "prod-monitoring",
    "staging-monitoring",
)
#: Scopes of the demo's org token: read, plus write for auto-provisioning.
TOKEN_SCOPES = ("org:read", "project:read", "project:write")


@dataclass(frozen=True)
class DemoService:
    """One service that sends telemetry, with the resource attributes its SDK would set."""

    name: str
    expected_project: str | None  # slug, or None when it must be dropped as unrouted
    scenario: str
    protocol: str = "http"  # "http" (OTLP/HTTP protobuf) or "grpc"
    attributes: dict[str, str] = field(default_factory=dict)


SERVICES = (
    DemoService("payments-api", "payments-api", "1 route by service.name", "http", {"k8s.namespace.name": "payments"}),
    DemoService("payments-worker", "payments-worker", "1 route by service.name", "grpc"),
    DemoService("orders-service", "ecommerce-orders", "2 custom mapping", "http"),
    DemoService("products-service", "ecommerce-products", "2 custom mapping", "grpc"),
    DemoService("api-gateway", "ecommerce-gateway", "2 custom mapping", "http"),
    DemoService("legacy-reports", "shop-catch-all", "2 namespace fallback", "http", {"k8s.namespace.name": "shop"}),
    DemoService(
        "nightly-batch", "prod-monitoring", "3 route by environment", "grpc", {"deployment.environment": "production"}
    ),
    DemoService("cart", "shop-dev-cart", "4 auto-provisioned", "http", {"k8s.namespace.name": "shop-dev"}),
    DemoService("recommendations", "shop-dev-recommendations", "4 auto-provisioned", "grpc"),
    DemoService("stray-service", None, "unrouted (dropped, counted)", "http"),
)
SPANS_PER_SERVICE = 12
LOGS_PER_SERVICE = 4

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


# Scenario labels name the example file and the scenario number of Sentry's exporter docs that its comment gives.
S1 = "examples/01: by service.name (docs scenario 1)"
S2 = "examples/02: custom mapping (docs scenario 3)"
S2_FALLBACK = "examples/02: namespace fallback"
S3 = "examples/03: by environment (docs scenario 4)"
S4 = "examples/04: auto-provisioned (docs scenario 2)"

SERVICES = (
    DemoService("payments-api", "payments-api", S1, "http", {"k8s.namespace.name": "payments"}),
    DemoService("payments-worker", "payments-worker", S1, "grpc"),
    DemoService("orders-service", "ecommerce-orders", S2, "http"),
    DemoService("products-service", "ecommerce-products", S2, "grpc"),
    DemoService("api-gateway", "ecommerce-gateway", S2, "http"),
    DemoService("legacy-reports", "shop-catch-all", S2_FALLBACK, "http", {"k8s.namespace.name": "shop"}),
    DemoService("nightly-batch", "prod-monitoring", S3, "grpc", {"deployment.environment": "production"}),
    DemoService("cart", "shop-dev-cart", S4, "http", {"k8s.namespace.name": "shop-dev"}),
    DemoService("recommendations", "shop-dev-recommendations", S4, "grpc"),
    DemoService("stray-service", None, "unrouted (dropped, counted)", "http"),
)
#: Projects that are routed but that no demo service sends to, and why (so a 0/0 row explains itself).
IDLE_PROJECTS = {
    "staging-monitoring": "examples/03: routed, but no demo service runs in staging",
}
SPANS_PER_SERVICE = 12
LOGS_PER_SERVICE = 4

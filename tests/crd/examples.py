"""The SentryRoute of SPEC §2, complete with a status, as the tests' reference instance."""

from __future__ import annotations

from typing import Any

SPEC_EXAMPLE: dict[str, Any] = {
    "apiVersion": "sentryroute.dev/v1alpha1",
    "kind": "SentryRoute",
    "metadata": {"name": "shop", "namespace": "shop"},
    "spec": {
        "attribute": "service.name",
        "mapping": {"orders-service": "ecommerce-orders", "products-service": "ecommerce-products"},
        "autoProvision": {
            "enabled": True,
            "team": "backend",
            "platform": "python",
            "projectTemplate": "{service}",
            "derive": "explicit",
            "podSelector": {"matchLabels": {"tier": "web"}},
            "staleAfter": "24h",
        },
        "fallbackProject": "shop-catch-all",
        "connection": "default",
        "deletionPolicy": "Retain",
    },
    "status": {
        "observedGeneration": 4,
        "projectCount": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Provisioned",
                "message": "3/3 projects ready",
                "lastTransitionTime": "2026-11-25T10:00:00Z",
            }
        ],
        "projects": [
            {"value": "orders-service", "slug": "ecommerce-orders", "id": "42", "state": "Ready", "created": False}
        ],
        "kopf": {"progress": {}},  # kopf's own bookkeeping must be kept
    },
}

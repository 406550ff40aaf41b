"""`sentryroute operator`: provision Sentry projects for SentryRoutes and render the routes table (SPEC §5)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from sentryroute.options import add_option

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser,
        "--connections",
        help="YAML file {connections: [...]}, each {name, url, orgSlug, tokenSecret or tokenFile, allowedNamespaces} "
        "(without it: one connection 'default' from SENTRY_URL, SENTRY_ORG_SLUG and SENTRY_AUTH_TOKEN[_FILE])",
        metavar="FILE",
    )
    add_option(
        parser,
        "--namespace",
        help="the operator's own namespace (default: POD_NAMESPACE, else the "
        "service account's namespace, else 'default')",
        metavar="NAMESPACE",
    )
    add_option(
        parser,
        "--routes-configmap",
        help="the routes ConfigMap (default <namespace>/sentryroute-routes)",
        metavar="NS/NAME",
    )
    add_option(
        parser,
        "--report-configmap",
        help="the report ConfigMap (default <namespace>/sentryroute-requests)",
        metavar="NS/NAME",
    )
    add_option(
        parser, "--new-project-warmup", default="10s", help="how long a new project stays pending", metavar="DURATION"
    )
    add_option(
        parser,
        "--default-attribute",
        default="service.name",
        help="attribute of routes without one",
        metavar="ATTRIBUTE",
    )
    add_option(parser, "--auto-create", action="store_true", default=False, help="create projects for reported values")
    add_option(parser, "--auto-create-team", help="team that auto-created projects belong to", metavar="TEAM")
    add_option(
        parser,
        "--auto-create-deny",
        help="comma-separated patterns never auto-created (unknown_service* always)",
        metavar="PATTERNS",
    )
    add_option(
        parser, "--auto-create-rate", default="30", help="at most this many auto-created projects per hour", metavar="N"
    )
    add_option(
        parser, "--fallback-project", help="cluster-wide fallback project slug (default connection)", metavar="SLUG"
    )
    add_option(
        parser,
        "--reverify-interval",
        default="5m",
        help="how often projects and keys are re-checked",
        metavar="DURATION",
    )
    add_option(
        parser,
        "--routes-size-limit",
        default="1MiB",
        help="largest routes table written (warning at 80%%)",
        metavar="SIZE",
    )
    add_option(parser, "--peering", help="kopf peering name for HA (none: standalone)", metavar="NAME")
    add_option(
        parser, "--priority", default="0", help="kopf peering priority; replicas need distinct priorities", metavar="N"
    )
    add_option(
        parser,
        "--priority-from-hostname",
        action="store_true",
        default=False,
        help="priority 100-N from a StatefulSet hostname ordinal N",
    )
    add_option(parser, "--liveness", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz", metavar="URL")
    add_option(parser, "--metrics", help="serve Prometheus metrics on this address", metavar="HOST:PORT")
    add_option(
        parser, "--log-format", default="text", choices=["text", "json"], help="log line format", metavar="{text,json}"
    )


def run(args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import start_http_server

    from .connections import ConnectionsError
    from .runtime import run_operator
    from .settings import settings_from_args

    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        log.error("Invalid setting: %s", exc)
        return 2
    kopf.configure(log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL)
    # kopf logs "Handler ... succeeded" for every Pod event; our own INFO lines say what actually changed.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if settings.metrics:
        host, _, port = settings.metrics.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0")
    try:
        asyncio.run(run_operator(settings))
    except ConnectionsError as exc:
        log.error("%s", exc)
        return 2
    return 0

"""The operator's settings (SPEC §5), resolved once from flags/env into one frozen object.

Everything the reconcile needs is here, already parsed (durations in seconds, `NS/NAME` split), so the rest
of the code never touches argparse or the environment.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sentryroute.durations import parse_duration, parse_size

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FINALIZER = "sentryroute.dev/finalizer"
ROUTES_CONFIGMAP = "sentryroute-routes"
REPORT_CONFIGMAP = "sentryroute-requests"
_ORDINAL_RE = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class ObjectRef:
    """A namespaced object name, written `NS/NAME` on the command line."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str, *, default_namespace: str) -> ObjectRef:
        namespace, sep, name = text.partition("/")
        if not sep:
            namespace, name = default_namespace, text
        if not namespace or not name or "/" in name:
            raise ValueError(f"invalid object reference {text!r}: use NAMESPACE/NAME")
        return cls(namespace=namespace, name=name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = "default"
    connections_file: str | None = None
    routes_configmap: ObjectRef = ObjectRef("default", ROUTES_CONFIGMAP)
    report_configmap: ObjectRef = ObjectRef("default", REPORT_CONFIGMAP)
    new_project_warmup: float = 10.0
    default_attribute: str = "service.name"
    auto_create: bool = False
    auto_create_team: str | None = None
    auto_create_deny: tuple[str, ...] = ()
    auto_create_rate: int = 30
    fallback_project: str | None = None
    reverify_interval: float = 300.0
    routes_size_limit: int = 1024 * 1024
    peering: str | None = None
    priority: int = 0
    liveness: str | None = None
    metrics: str | None = None
    kubeconfig: str | None = None
    #: Environment the default connection is read from (SENTRY_URL, …); a copy, so tests can pass their own.
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def standalone(self) -> bool:
        return self.peering is None


def own_namespace(env: dict[str, str]) -> str:
    """POD_NAMESPACE, else the service account's namespace file, else `default`."""
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def priority_from_hostname(hostname: str) -> int:
    """A StatefulSet pod `sentryroute-operator-2` gets priority 100 - 2: replica 0 leads, all distinct."""
    match = _ORDINAL_RE.search(hostname)
    if not match:
        raise ValueError(f"hostname {hostname!r} has no StatefulSet ordinal suffix (-N)")
    return 100 - int(match.group(1))


def settings_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> OperatorSettings:
    """Resolve parsed flags into settings; raises ValueError naming the bad option."""
    env = dict(os.environ if env is None else env)
    namespace = args.namespace or own_namespace(env)
    priority = int(args.priority)
    if args.priority_from_hostname:
        priority = priority_from_hostname(env.get("HOSTNAME") or os.uname().nodename)
    deny = tuple(p.strip() for p in (args.auto_create_deny or "").split(",") if p.strip())
    return OperatorSettings(
        namespace=namespace,
        connections_file=args.connections,
        routes_configmap=ObjectRef.parse(args.routes_configmap or ROUTES_CONFIGMAP, default_namespace=namespace),
        report_configmap=ObjectRef.parse(args.report_configmap or REPORT_CONFIGMAP, default_namespace=namespace),
        new_project_warmup=parse_duration(args.new_project_warmup),
        default_attribute=args.default_attribute,
        auto_create=bool(args.auto_create),
        auto_create_team=args.auto_create_team or None,
        auto_create_deny=deny,
        auto_create_rate=int(args.auto_create_rate),
        fallback_project=args.fallback_project or None,
        reverify_interval=parse_duration(args.reverify_interval),
        routes_size_limit=parse_size(args.routes_size_limit),
        peering=args.peering or None,
        priority=priority,
        liveness=args.liveness or None,
        metrics=args.metrics or None,
        kubeconfig=env.get("KUBECONFIG") or None,
        env=env,
    )

"""A SentryRoute body → `RouteSpec`, the immutable snapshot the reconcile works from.

The API server validates specs against the CRD schema, but the operator re-checks what it relies on
(slugs, durations, enums): a CRD installed without its schema, or an older one, must not make the
operator send a malformed slug to Sentry. Problems become a `problem` the status reports, never a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sentryroute.durations import parse_duration
from sentryroute.routes import canonical_json, is_valid_user_slug
from sentryroute.selectors import LabelSelector, SelectorError, label_selector_from_spec

from .selectors import NOTHING
from .service_names import DeriveMode

GROUP, VERSION, PLURAL, KIND = "sentryroute.dev", "v1alpha1", "sentryroutes", "SentryRoute"
CRD_NAME = f"{PLURAL}.{GROUP}"
#: The cluster-scoped kind (SPEC §2.1): the same spec; its RouteSpec has namespace "" (key ("", name)).
CLUSTER_PLURAL, CLUSTER_KIND = "clustersentryroutes", "ClusterSentryRoute"
RECREATE_ANNOTATION = "sentryroute.dev/recreate"
DEFAULT_STALE_AFTER = 24 * 3600.0
RouteKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class AutoProvision:
    team: str | None
    platform: str = "other"
    project_template: str = "{service}"
    derive: DeriveMode = "explicit"
    pod_selector: Mapping[str, Any] | None = None
    stale_after: float = DEFAULT_STALE_AFTER


@dataclass(frozen=True)
class StatusEntry:
    """A `status.projects[]` entry as last written: remembers provenance (`created`) across restarts."""

    value: str
    slug: str
    id: str | None
    state: str
    created: bool
    message: str = ""
    last_seen: str | None = None  # RFC 3339: when the value's last Pod was noticed gone


@dataclass(frozen=True)
class RouteSpec:
    namespace: str
    name: str
    uid: str
    creation_timestamp: str
    generation: int
    attribute: str
    mapping: Mapping[str, str] = field(default_factory=dict)
    auto: AutoProvision | None = None
    fallback_project: str | None = None
    connection: str = "default"
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    recreate: bool = True
    deleting: bool = False
    status_entries: tuple[StatusEntry, ...] = ()
    current_status: Mapping[str, Any] = field(default_factory=dict)
    problem: str | None = None  # a spec error the status reports (reason InvalidSpec)
    spec_digest: str = ""  # changes with the spec even where the API server keeps no `generation`
    cluster: bool = False  # a ClusterSentryRoute (SPEC §2.1): cluster-wide entries, after every SentryRoute
    #: ClusterSentryRoute only: which namespaces it covers (SPEC §2.1); None: every one, cluster-wide entries.
    namespace_selector: LabelSelector | None = None

    @property
    def key(self) -> RouteKey:
        return (self.namespace, self.name)

    @property
    def scope(self) -> str | None:
        """The namespace whose Pods and telemetry this route covers; None for a cluster-wide route."""
        return self.namespace or None

    @property
    def order(self) -> tuple[int, str, str, str]:
        """SPEC §2.1/§3's rendering order: every SentryRoute by (creationTimestamp, namespace, name), then
        every ClusterSentryRoute by (creationTimestamp, name)."""
        return (1 if self.cluster else 0, self.creation_timestamp, self.namespace, self.name)

    @property
    def plural(self) -> str:
        return CLUSTER_PLURAL if self.cluster else PLURAL

    def inputs(self) -> tuple[Any, ...]:
        """What a reconcile depends on; status writes change none of it, so they never re-trigger work."""
        return (self.spec_digest, self.recreate, self.deleting, self.uid)

    @property
    def status_conditions(self) -> list[Mapping[str, Any]]:
        return [c for c in self.current_status.get("conditions") or () if isinstance(c, Mapping)]

    def object_ref(self) -> dict[str, Any]:
        """A minimal body kopf can post Events for."""
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": CLUSTER_KIND if self.cluster else KIND,
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid}
            if not self.cluster
            else {"name": self.name, "uid": self.uid},
        }


def _mapping(value: Any) -> Mapping[str, Any]:
    """A map from the body, or an empty one for anything else (a CRD installed without its schema)."""
    return value if isinstance(value, Mapping) else {}


def _status_entries(status: Mapping[str, Any]) -> tuple[StatusEntry, ...]:
    entries = []
    for item in status.get("projects") or ():
        if isinstance(item, Mapping) and isinstance(item.get("value"), str) and isinstance(item.get("slug"), str):
            entries.append(
                StatusEntry(
                    value=item["value"],
                    slug=item["slug"],
                    id=str(item["id"]) if item.get("id") else None,
                    state=str(item.get("state") or ""),
                    created=item.get("created") is True,
                    message=str(item.get("message") or ""),
                    last_seen=str(item["lastSeen"]) if isinstance(item.get("lastSeen"), str) else None,
                )
            )
    return tuple(entries)


def _auto_provision(raw: Mapping[str, Any]) -> tuple[AutoProvision | None, str | None]:
    if not raw.get("enabled"):
        return None, None
    derive = raw.get("derive") or "explicit"
    if derive not in ("explicit", "inferred"):
        return None, f"autoProvision.derive must be explicit or inferred, not {str(derive)[:40]!r}"
    try:
        stale_after = parse_duration(str(raw.get("staleAfter") or "24h"))
    except ValueError as exc:
        return None, f"autoProvision.staleAfter: {exc}"
    return (
        AutoProvision(
            team=raw.get("team") or None,
            platform=str(raw.get("platform") or "other"),
            project_template=str(raw.get("projectTemplate") or "{service}"),
            derive="inferred" if derive == "inferred" else "explicit",
            pod_selector=raw.get("podSelector") or None,
            stale_after=stale_after,
        ),
        None,
    )


def _namespace_selector(spec: Mapping[str, Any]) -> tuple[LabelSelector | None, str | None]:
    """A ClusterSentryRoute's `namespaceSelector`; a malformed one selects no namespace (never widened)."""
    raw = spec.get("namespaceSelector")
    if raw is None:
        return None, None
    try:
        return label_selector_from_spec(_mapping(raw)), None
    except SelectorError as exc:
        return NOTHING, f"namespaceSelector: {exc}"


def parse_route(body: Mapping[str, Any], *, default_attribute: str) -> RouteSpec:
    metadata = body.get("metadata") or {}
    spec = _mapping(body.get("spec"))
    annotations = _mapping(metadata.get("annotations"))
    problems: list[str] = []
    mapping = {str(k): str(v) for k, v in _mapping(spec.get("mapping")).items()}
    problems += [
        f"mapping[{k!r}]: {v!r} is not a valid project slug" for k, v in mapping.items() if not is_valid_user_slug(v)
    ]
    auto, auto_problem = _auto_provision(_mapping(spec.get("autoProvision")))
    attribute = str(spec.get("attribute") or default_attribute)
    if auto_problem:
        problems.append(auto_problem)
    if auto is not None and attribute != "service.name":
        problems.append("autoProvision derives service.name values only: set attribute to service.name")
        auto = None
    fallback = spec.get("fallbackProject") or None
    if fallback is not None and not is_valid_user_slug(str(fallback)):
        problems.append(f"fallbackProject {str(fallback)[:100]!r} is not a valid project slug")
        fallback = None
    cluster = body.get("kind") == CLUSTER_KIND
    if cluster and auto is not None and "{namespace}" in auto.project_template:
        # A ClusterSentryRoute's values are cluster-wide (one project per value), so a per-namespace template
        # has no single answer: refused rather than filled with an empty namespace.
        problems.append("autoProvision.projectTemplate: {namespace} is not supported in a ClusterSentryRoute")
        auto = None
    selector, selector_problem = _namespace_selector(spec) if cluster else (None, None)
    if selector_problem:
        problems.append(selector_problem)
    policy = spec.get("deletionPolicy") or "Retain"
    if policy not in ("Retain", "Delete"):
        problems.append(f"deletionPolicy must be Retain or Delete, not {str(policy)[:40]!r}")
        policy = "Retain"
    return RouteSpec(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        creation_timestamp=str(metadata.get("creationTimestamp") or ""),
        generation=int(metadata.get("generation") or 0),
        attribute=attribute,
        mapping={k: v for k, v in mapping.items() if is_valid_user_slug(v)},
        auto=auto,
        fallback_project=fallback,
        connection=str(spec.get("connection") or "default"),
        deletion_policy="Delete" if policy == "Delete" else "Retain",
        recreate=str(annotations.get(RECREATE_ANNOTATION, "true")).lower() != "false",
        deleting=bool(metadata.get("deletionTimestamp")),
        status_entries=_status_entries(_mapping(body.get("status"))),
        current_status=dict(_mapping(body.get("status"))),
        problem="; ".join(problems) or None,
        spec_digest=hashlib.sha256(canonical_json(spec).encode()).hexdigest(),
        cluster=cluster,
        namespace_selector=selector,
    )

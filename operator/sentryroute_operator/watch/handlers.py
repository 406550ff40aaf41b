"""The kopf handlers: indexes feed the reconcile loop, events poke it, a timer re-verifies, a daemon runs it.

The top layer: handlers call down into the core (`reconcile.Engine`), never the other way round.
Everything is registered on a registry passed in (not kopf's global one), so two operators can run in one
process — the HA test does — and each handler closes over its own `Engine`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..derive import OwnerRef, PodFacts, controller_owner, pod_facts
from ..derive.routes import CLUSTER_PLURAL, CRD_NAME, GROUP, PLURAL, VERSION, RouteKey, RouteSpec, parse_route
from ..reconcile import Engine, Indexes
from ..settings import FINALIZER, OperatorSettings
from .report_watch import ReportWatcher

ANNOTATION_PREFIX = "sentryroute.dev"


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """kopf's own Events for warnings only (our Events are posted by the reconcile), our finalizer name,
    progress in annotations (the status belongs to the route's users)."""
    kopf_settings.posting.enabled = True
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # A freshly started peer must not act before it has seen the others (SPEC §5, HA).
    if settings.peering is not None:
        kopf_settings.peering.name = settings.peering
        kopf_settings.peering.priority = settings.priority
        kopf_settings.peering.mandatory = True


def register_handlers(registry: kopf.OperatorRegistry, engine: Engine, settings: OperatorSettings) -> None:
    def is_sentryroute_crd(name: str, **_: Any) -> bool:
        return name == CRD_NAME

    def deletes_projects(spec: Any, **_: Any) -> bool:
        return bool(spec.get("deletionPolicy") == "Delete")

    @kopf.on.startup(registry=registry)
    async def start(**kwargs: Any) -> None:
        configure_kopf(kwargs["settings"], settings)  # kopf's settings object, configured from ours
        await engine.prepare()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await engine.close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    # --- indexes: kopf lists these fully before any handler below runs (the start-up barrier) ---
    @kopf.index(GROUP, VERSION, PLURAL, id="sentryroutes", registry=registry)
    def sentryroutes(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[Any, Any]:
        return {(namespace, name): parse_route(body, default_attribute=settings.default_attribute)}

    @kopf.index(GROUP, VERSION, CLUSTER_PLURAL, id="clustersentryroutes", registry=registry)
    def clustersentryroutes(body: kopf.Body, name: str, **_: Any) -> dict[Any, Any]:
        return {("", name): parse_route(body, default_attribute=settings.default_attribute)}

    @kopf.index("v1", "pods", id="pods", registry=registry)
    def pods(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
        return {namespace or "": pod_facts(body)}

    # Namespaces with their labels: what a ClusterSentryRoute's namespaceSelector selects (SPEC §2.1).
    @kopf.index("v1", "namespaces", id="namespace_labels", registry=registry)
    def namespace_labels(name: str, labels: kopf.Labels, **_: Any) -> dict[Any, Any]:
        return {name: {str(k): str(v) for k, v in labels.items()}}

    @kopf.index("apps", "v1", "replicasets", id="replicaset_parents", registry=registry)
    def replicaset_parents(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[Any, Any] | None:
        owner = controller_owner(body.get("metadata") or {})
        return {(namespace, name): owner} if owner is not None else None

    @kopf.index("batch", "v1", "jobs", id="job_parents", registry=registry)
    def job_parents(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[Any, Any] | None:
        owner = controller_owner(body.get("metadata") or {})
        return {(namespace, name): owner} if owner is not None else None

    # --- pokes: any change may change the table; the loop decides what actually changed ---
    @kopf.on.event(GROUP, VERSION, PLURAL, id="changed", registry=registry)
    @kopf.on.event(GROUP, VERSION, CLUSTER_PLURAL, id="changed", registry=registry)
    @kopf.on.event("v1", "pods", id="changed", registry=registry)
    @kopf.on.event("v1", "namespaces", id="changed", registry=registry)
    @kopf.on.event("apps", "v1", "replicasets", id="changed", registry=registry)
    @kopf.on.event("batch", "v1", "jobs", id="changed", registry=registry)
    def changed(**_: Any) -> None:
        engine.poke()

    @kopf.timer(GROUP, VERSION, PLURAL, id="reverify", interval=settings.reverify_interval, registry=registry)
    @kopf.timer(GROUP, VERSION, CLUSTER_PLURAL, id="reverify", interval=settings.reverify_interval, registry=registry)
    def reverify(namespace: str | None, name: str, **_: Any) -> None:
        engine.request_reverify((namespace or "", name))

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="delete_projects", when=deletes_projects, registry=registry)
    @kopf.on.delete(GROUP, VERSION, CLUSTER_PLURAL, id="delete_projects", when=deletes_projects, registry=registry)
    async def delete_projects(body: kopf.Body, **_: Any) -> None:
        await engine.delete_created_projects(parse_route(body, default_attribute=settings.default_attribute))

    # --- the loop itself, as a daemon on the SentryRoute CRD: one cluster-scoped object that exists whenever
    # there is anything to do, so kopf starts it after the indexes are listed and stops it when paused ---
    # kopf passes each index as a keyword argument named by its id; its DaemonFn protocol cannot list them.
    @kopf.daemon(  # type: ignore[arg-type]
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        id="reconcile_loop",
        when=is_sentryroute_crd,
        cancellation_timeout=5.0,
        backoff=1.0,
        registry=registry,
    )
    async def reconcile_loop(
        stopped: kopf.DaemonStopped,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        sentryroutes: kopf.Index[RouteKey, RouteSpec],
        clustersentryroutes: kopf.Index[RouteKey, RouteSpec],
        pods: kopf.Index[str, PodFacts],
        namespace_labels: kopf.Index[str, dict[str, str]],
        replicaset_parents: kopf.Index[tuple[str, str], OwnerRef],
        job_parents: kopf.Index[tuple[str, str], OwnerRef],
        **_: Any,
    ) -> None:
        indexes = Indexes(
            routes=sentryroutes,
            cluster_routes=clustersentryroutes,
            pods=pods,
            namespaces=namespace_labels,
            replicaset_parents=replicaset_parents,
            job_parents=job_parents,
        )
        logger.info("Reconcile loop started")
        reports = ReportWatcher(engine.kube.client, settings.report_configmap, on_change=engine.update_reports)
        reports.start()
        try:
            await engine.run(indexes, stopped=stopped)
        finally:
            await reports.stop()

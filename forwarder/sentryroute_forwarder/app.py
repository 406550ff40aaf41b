"""The forwarder process: receivers → router → queue pipeline → Sentry, plus the table source and admin.

`Forwarder.start()` binds every listener (port 0 picks a free one; the bound ports are attributes),
`Forwarder.stop()` shuts down gracefully: not ready, no new requests, flush within `--shutdown-timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Protocol

from sentryroute.routes import RoutesTable
from sentryroute_forwarder.admin import build_admin_server
from sentryroute_forwarder.config import Address, ForwarderSettings
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Pipeline
from sentryroute_forwarder.peers.index import PeerIndex
from sentryroute_forwarder.peers.resolver import PeerResolver
from sentryroute_forwarder.queue.pipeline import QueuePipeline
from sentryroute_forwarder.receive.auth import BearerAuth
from sentryroute_forwarder.receive.http_protocol import HttpServer
from sentryroute_forwarder.receive.intake import Intake
from sentryroute_forwarder.receive.offload import Offload
from sentryroute_forwarder.receive.otlp_grpc import GrpcReceiver, start_grpc_server
from sentryroute_forwarder.receive.otlp_http import build_http_server, receiver_grace
from sentryroute_forwarder.receive.tls import ReloadingTls
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.validate import WIRE_CHECK_MODE, warn_if_slow
from sentryroute_forwarder.table.file_watcher import RoutesFileWatcher
from sentryroute_forwarder.table.loader import TableLoader

__all__ = ["Forwarder", "ManagedPipeline"]

log = logging.getLogger(__name__)

#: How long admin requests in flight may take to finish once everything else has stopped (they are instant).
_ADMIN_GRACE = 1.0


class ManagedPipeline(Pipeline, Protocol):
    """A `Pipeline` with a lifecycle (the queue's `QueuePipeline`)."""

    async def start(self) -> None: ...

    async def close(self, timeout: float) -> int:  # noqa: ASYNC109 - a bound on flushing, not a cancel scope
        """Flush for at most `timeout` seconds; returns the items that could not be delivered."""
        ...

    def release_answers(self) -> None:
        """Shutdown begins: answer every request held by pacing now."""
        ...

    def held_values(self) -> list[tuple[str, str, str]]:
        """(attribute, value, reason) of held data."""
        ...

    def held_entries(self) -> list[tuple[str, str, str, str | None]]:
        """(attribute, value, reason, namespace) of held data, for the report channel (SPEC §4)."""
        ...


class Forwarder:
    def __init__(
        self,
        settings: ForwarderSettings,
        *,
        metrics: ForwarderMetrics | None = None,
        pipeline: ManagedPipeline | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ForwarderMetrics()
        self.pipeline: ManagedPipeline = pipeline or QueuePipeline(
            settings=settings, metrics=self.metrics, strict_namespaces=settings.peer_mode
        )
        # --namespace-from peer (SPEC §6.1): pods by address, fed by a Pod watch started with the receivers.
        self.peer_index: PeerIndex | None = PeerIndex() if settings.peer_mode else None
        peers = None
        if self.peer_index is not None:
            peers = PeerResolver(self.peer_index, metrics=self.metrics, wait=settings.peer_wait)
        self.intake = Intake(pipeline=self.pipeline, metrics=self.metrics, peers=peers)
        self.offload = Offload(settings.decode_workers)
        self.loader = TableLoader(on_table=self._apply_table, metrics=self.metrics)
        self.http_port = self.grpc_port = self.admin_port = 0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._admin_server: HttpServer | None = None
        self._http_server: HttpServer | None = None
        self._grpc_server: GrpcReceiver | None = None
        self._revision: str | None = None
        self._routes_file: RoutesFileWatcher | None = None
        self.metrics.queue_limit_bytes.set(settings.bound)
        self.metrics.ready.set_function(lambda: 0.0 if self.not_ready_reason() else 1.0)
        self.metrics.wire_check.labels(WIRE_CHECK_MODE).set(1)

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind admin, load the first table if there is one, start the pipeline, then open the receivers."""
        settings = self.settings
        warn_if_slow()
        self._admin_server = build_admin_server(
            metrics=self.metrics, not_ready_reason=self.not_ready_reason, read_timeout=settings.read_timeout
        )
        self.admin_port = await self._admin_server.start(settings.admin.host, settings.admin.port, ssl_context=None)
        await self.pipeline.start()
        self._start_table_source()
        self._start_pod_watch()
        self._start_reporter()

        auth = BearerAuth(settings.auth_token_file) if settings.auth_token_file else None
        tls = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            tls = ReloadingTls(cert=settings.tls_cert, key=settings.tls_key, client_ca=settings.client_ca)
        self._http_server = build_http_server(
            intake=self.intake, settings=settings, metrics=self.metrics, auth=auth, offload=self.offload
        )
        self.http_port = await self._http_server.start(
            settings.otlp_http.host, settings.otlp_http.port, ssl_context=tls.ssl_context() if tls else None
        )
        self._grpc_server, self.grpc_port = await start_grpc_server(
            intake=self.intake, settings=settings, metrics=self.metrics, auth=auth, tls=tls
        )
        log.info(
            "forwarder listening: OTLP/HTTP %s, OTLP/gRPC %s, admin %s%s",
            _bound(settings.otlp_http, self.http_port),
            _bound(settings.otlp_grpc, self.grpc_port),
            _bound(settings.admin, self.admin_port),
            " (TLS)" if tls else "",
        )

    async def stop(self) -> int:
        """Graceful shutdown; returns the items that could not be delivered."""
        if self._stopping:
            return 0
        self._stopping = True  # /readyz answers 503 from here on
        self.pipeline.release_answers()  # answers held by pacing go now: receivers stop within their grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._grpc_server is not None:
            await self._grpc_server.stop(receiver_grace(self.settings))
        if self._http_server is not None:
            await self._http_server.stop(receiver_grace(self.settings))  # requests in flight finish (bounded)
        self.offload.close()
        undelivered = await self.pipeline.close(max(0.0, deadline - loop.time()))
        if self._admin_server is not None:
            await self._admin_server.stop(_ADMIN_GRACE)  # last: /healthz answered while flushing
        level = logging.WARNING if undelivered else logging.INFO
        if self.settings.queue_dir is not None:
            log.log(
                level, "forwarder stopped; %d items stay in %s for the next start", undelivered, self.settings.queue_dir
            )
        else:
            log.log(level, "forwarder stopped; %d items could not be delivered", undelivered)
        return undelivered

    async def __aenter__(self) -> Forwarder:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def not_ready_reason(self) -> str | None:
        if self._stopping:
            return "shutting down"
        if self.loader.table is None:
            if self.settings.routes_configmap is not None:  # say where the table is awaited from
                ref = self.settings.routes_configmap
                return f"no routes table loaded yet (waiting for ConfigMap {ref.namespace}/{ref.name})"
            problem = self._routes_file.problem if self._routes_file is not None else None
            return f"no routes table loaded yet ({problem})" if problem else "no routes table loaded yet"
        if self.peer_index is not None and not self.peer_index.synced:
            return "pods not listed yet (--namespace-from peer)"
        return None

    # -- wiring ------------------------------------------------------------------------------------------

    def _start_table_source(self) -> None:
        settings = self.settings
        if settings.routes_configmap is not None:
            # Imported only here: the kubernetes client costs start-up time a file-based forwarder never needs.
            from sentryroute_forwarder.table.configmap_watcher import RoutesConfigMapWatcher

            source = RoutesConfigMapWatcher(settings.routes_configmap, loader=self.loader)
            self._tasks.append(asyncio.create_task(source.run(), name="sentryroute-routes-configmap"))
            return
        watcher = RoutesFileWatcher(settings.routes, interval=settings.routes_poll_interval, loader=self.loader)
        self._routes_file = watcher
        watcher.check()  # ready at once when the file is there
        self._tasks.append(asyncio.create_task(watcher.run(), name="sentryroute-routes-file"))

    def _start_pod_watch(self) -> None:
        """`--namespace-from peer`: keep the peer index current (list/watch Pods cluster-wide)."""
        index = self.peer_index
        if index is None:
            return
        from sentryroute_forwarder.peers.pod_watch import PodWatcher  # kubernetes import, as above

        watcher = PodWatcher(
            index,
            relays=self.settings.trusted_relays,
            on_change=lambda: self.metrics.peer_index_pods.set(len(index)),
        )
        self._tasks.append(asyncio.create_task(watcher.run(), name="sentryroute-pod-watch"))

    def _start_reporter(self) -> None:
        """Report held values to the operator (SPEC §4); off without `--report-configmap`."""
        if self.settings.report_configmap is None:
            return
        from sentryroute_forwarder.report.reporter import HeldValuesReporter  # kubernetes import, as above

        reporter = HeldValuesReporter(
            self.settings.report_configmap,
            held_values=self.pipeline.held_entries,
            interval=self.settings.report_interval,
            namespace_from=self.settings.namespace_from,
        )
        self._tasks.append(asyncio.create_task(reporter.run(), name="sentryroute-report"))

    def _apply_table(self, table: RoutesTable) -> None:
        router = Router(table, strict=self.settings.peer_mode)
        self.pipeline.apply_table(table)  # first, so that parts routed by the new router find their projects
        self.intake.router = router
        if self._revision is not None:
            self.metrics.routes_revision.remove(self._revision)
        self.metrics.routes_revision.labels(table.revision).set(1)
        self.metrics.routes_loaded.set_to_current_time()
        self._revision = table.revision


def _bound(address: Address, port: int) -> str:
    return str(Address(address.host, port))

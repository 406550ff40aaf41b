"""Build and run the operator in-process: what `sentryroute operator`, `kopf run` and the tests share."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kopf

from .connections import load_connections
from .kubeio import KubeIO, new_kube_client
from .reconcile import Engine
from .settings import OperatorSettings
from .watch.handlers import configure_kopf, register_handlers


class OperatorApp:
    """One operator instance: its own kopf registry and engine (so several can share a process)."""

    def __init__(self, settings: OperatorSettings, *, registry: kopf.OperatorRegistry | None = None) -> None:
        self.settings = settings
        self.kube = KubeIO(new_kube_client(settings))
        self.engine = Engine(
            settings, kube=self.kube, connections=load_connections(settings.connections_file, settings.env)
        )
        self.registry = registry if registry is not None else kopf.OperatorRegistry()
        register_handlers(self.registry, self.engine, settings)

    async def run(
        self,
        *,
        stop_flag: asyncio.Future[Any] | asyncio.Event | threading.Event | None = None,
        ready_flag: asyncio.Future[Any] | asyncio.Event | threading.Event | None = None,
    ) -> None:
        kopf_settings = kopf.OperatorSettings()
        configure_kopf(kopf_settings, self.settings)
        try:
            await kopf.operator(
                registry=self.registry,
                settings=kopf_settings,
                clusterwide=True,
                standalone=self.settings.standalone,
                peering_name=self.settings.peering,
                priority=self.settings.priority,
                liveness_endpoint=self.settings.liveness,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        finally:
            await self.kube.close()


async def run_operator(
    settings: OperatorSettings,
    *,
    stop_flag: asyncio.Future[Any] | asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Future[Any] | asyncio.Event | threading.Event | None = None,
) -> None:
    """Run one operator until `stop_flag` is set (tests) or a signal arrives (the CLI)."""
    await OperatorApp(settings).run(stop_flag=stop_flag, ready_flag=ready_flag)

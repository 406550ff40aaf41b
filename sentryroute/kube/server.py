"""`KubeEmulator`: serve a `RealisticEmulator` on 127.0.0.1 and hand out a kubeconfig for it.

Two ways to run it, because its users live in both worlds:

- `with KubeEmulator().running_in_thread() as kube:` for synchronous code (tests with the blocking
  `kubernetes` client, kopf's `KopfRunner`, the demo): the server gets its own event loop in a daemon thread;
- `async with KubeEmulator() as kube:` for code already on an event loop (the server shares it; call blocking
  clients from another thread then, or they stall the server).

The server is plain `aiohttp.web.Server`, not `kmock.Server`: kmock's server patches aiohttp's DNS resolver
process-wide and insists on LIFO exits, which breaks when several servers live in threads of one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp.web
import kmock
import kubernetes.client
import kubernetes.config
import yaml

from sentryroute.kube.emulator import RealisticEmulator

__all__ = ["KubeEmulator", "write_kubeconfig"]

T = TypeVar("T")

_CONTEXT = "emulator"
_MAX_REQUEST_BYTES = 3 * 1024 * 1024
_DUMMY_TOKEN = "emulator-token"  # the emulator has no authentication, but clients insist on a credential


def write_kubeconfig(path: str | os.PathLike[str], server_url: str) -> Path:
    """Write a kubeconfig whose current context `emulator` points at `server_url` with a dummy token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": _CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": _CONTEXT, "user": {"token": _DUMMY_TOKEN}}],
        "contexts": [{"name": _CONTEXT, "context": {"cluster": _CONTEXT, "user": _CONTEXT, "namespace": "default"}}],
        "current-context": _CONTEXT,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


def _large_requests(loop: asyncio.AbstractEventLoop) -> Callable[..., aiohttp.web.BaseRequest]:
    """Requests up to the API server's 3 MiB (aiohttp's default of 1 MiB is less than a full ConfigMap)."""

    def make(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> aiohttp.web.BaseRequest:
        return aiohttp.web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=_MAX_REQUEST_BYTES
        )

    return make


class KubeEmulator:
    """An emulated Kubernetes API server with its kubeconfig; see the module docstring for the two run modes."""

    def __init__(
        self,
        *,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        emulator: RealisticEmulator | None = None,
        shutdown_timeout: float = 2.0,
        access_log: bool = False,
    ) -> None:
        """`port=0` picks a free port; `kubeconfig_path=None` writes one into a temporary directory removed on exit.

        `access_log=True` logs every request to `aiohttp.access` (off: kopf's polling would drown other logs).
        """
        self.emulator = emulator if emulator is not None else RealisticEmulator()
        self._requested_kubeconfig = Path(kubeconfig_path) if kubeconfig_path is not None else None
        self._host, self._port = host, port
        self._shutdown_timeout = shutdown_timeout
        self._access_log = access_log
        self._runner: aiohttp.web.ServerRunner | None = None
        self._tempdir: str | None = None
        self._url: str | None = None
        self._kubeconfig: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------------------------
    # Running.

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        await self.emulator.__aenter__()
        quiet: dict[str, Any] = {} if self._access_log else {"access_log": None}
        server = aiohttp.web.Server(self.emulator, request_factory=_large_requests(self._loop), **quiet)
        self._runner = aiohttp.web.ServerRunner(server, shutdown_timeout=self._shutdown_timeout)
        try:
            await self._runner.setup()
            await aiohttp.web.TCPSite(self._runner, self._host, self._port).start()
        except BaseException as exc:  # e.g. the port is taken: undo what was started
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        if self._requested_kubeconfig is None:
            self._tempdir = tempfile.mkdtemp(prefix="sentryroute-kube-")
        path = self._requested_kubeconfig or Path(str(self._tempdir), "kubeconfig")
        self._kubeconfig = write_kubeconfig(path, self._url)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.emulator.store.stop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.emulator.__aexit__(exc_type, exc, tb)
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None
        self._url = self._kubeconfig = self._loop = self._loop_thread_id = None

    @contextlib.contextmanager
    def running_in_thread(self, *, startup_timeout: float = 30.0) -> Iterator[Self]:
        """Serve from a daemon thread with its own event loop until the block ends."""
        started = threading.Event()
        failure: list[BaseException] = []
        stop: list[asyncio.Event] = []

        async def serve() -> None:
            stop.append(asyncio.Event())
            try:
                async with self:
                    started.set()
                    await stop[0].wait()
            except Exception as exc:  # reported to the caller's thread, which raises it
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), name="kube-emulator", daemon=True)
        self._thread.start()
        if not started.wait(startup_timeout) or failure:
            raise RuntimeError("the Kubernetes emulator did not start") from (failure[0] if failure else None)
        try:
            yield self
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(stop[0].set)
            self._thread.join(timeout=self._shutdown_timeout + 10)
            self._thread = None

    # ----------------------------------------------------------------------------------------------------------
    # Using it.

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` of the running server."""
        if self._url is None:
            raise RuntimeError("the Kubernetes emulator is not running")
        return self._url

    @property
    def kubeconfig_path(self) -> Path:
        """The kubeconfig written for this server (current context `emulator`, namespace `default`)."""
        if self._kubeconfig is None:
            raise RuntimeError("the Kubernetes emulator is not running")
        return self._kubeconfig

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new official-client `ApiClient` for this server (close it when done, or use it in `with`)."""
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig_path))

    def apply(self, doc: Mapping[str, Any], *, namespace: str = "default") -> dict[str, Any]:
        """Create or replace one manifest (a `status` in it is written through the status subresource).

        `namespace` is for namespaced manifests that name none; an unknown kind raises `ApiError` (404).
        """
        return self.call(lambda: self.emulator.store.apply_document(doc, namespace=namespace))

    def apply_file(self, path: str | os.PathLike[str], *, namespace: str = "default") -> list[dict[str, Any]]:
        """Create or replace every document of a YAML file (and every item of a `kind: List`), in order."""
        docs = [doc for doc in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if doc]
        items = [item for doc in docs for item in (doc.get("items") or [] if doc.get("kind") == "List" else [doc])]
        return [self.apply(item, namespace=namespace) for item in items]

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Current objects of a resource such as `"v1/configmaps"` or `"sentryroute.dev/v1alpha1/sentryroutes"`."""
        return self.call(lambda: self.emulator.store.list_objects(kmock.resource(resource), namespace))

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One current object, or None when it does not exist."""
        return self.call(lambda: self.emulator.store.find_object(kmock.resource(resource), namespace, name))

    def call(self, function: Callable[[], T], *, timeout: float = 30.0) -> T:
        """Run `function` on the emulator's loop thread (its state is not thread-safe) and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the Kubernetes emulator is not running")
        if threading.get_ident() == self._loop_thread_id:
            return function()

        async def on_loop() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout)

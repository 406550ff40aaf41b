"""The demo's running system: both emulators in threads, the operator and the forwarder as real processes.

The routes ConfigMap reaches the forwarder the way a kubelet delivers a mounted ConfigMap: the demo mirrors it
into a directory with the atomic `..data` symlink swap, and the forwarder reloads the file on change.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sentryroute.emulator import EmulatorConfig, SentryEmulator
from sentryroute.kube import KubeEmulator

OPERATOR_NAMESPACE = "sentryroute"
ROUTES_CONFIGMAP = "sentryroute-routes"


def free_ports(count: int) -> list[int]:
    """`count` different ports that were free a moment ago (all held open together, so none repeats)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class ConfigMapMirror:
    """Mirror the routes ConfigMap into `<dir>/routes.json` as a kubelet does (`..data` symlink, swapped atomically)."""

    def __init__(self, kube: KubeEmulator, directory: Path, *, interval: float = 0.3) -> None:
        self._kube, self._dir, self._interval = kube, directory, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="configmap-mirror", daemon=True)
        self.content: str | None = None

    def __enter__(self) -> ConfigMapMirror:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            cm = self._kube.get("v1/configmaps", OPERATOR_NAMESPACE, ROUTES_CONFIGMAP)
            content = ((cm or {}).get("data") or {}).get("routes.json")
            if content is not None and content != self.content:
                self._publish(content)
                self.content = content

    def _publish(self, content: str) -> None:
        version = self._dir / f"..{time.time_ns()}"
        version.mkdir()
        (version / "routes.json").write_text(content, encoding="utf-8")
        tmp_link = self._dir / "..data_tmp"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(version.name)
        os.replace(tmp_link, self._dir / "..data")
        link = self._dir / "routes.json"
        if not link.is_symlink():
            link.symlink_to("..data/routes.json")


@dataclass
class Stack:
    sentry: SentryEmulator
    kube: KubeEmulator
    workdir: Path
    http_port: int
    grpc_port: int
    admin_port: int
    operator_metrics_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start_process(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log: IO[bytes] = open(self.log_path(name), "wb")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "sentryroute", *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def check_processes(self) -> None:
        """Raise with the log's tail when a process has died."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = self.log_path(name).read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"the {name} exited with code {proc.returncode}:\n  " + "\n  ".join(tail))

    def stop_processes(self, timeout: float = 15.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def running_stack(*, keep_workdir: bool = False) -> Iterator[Stack]:
    """Both emulators up, nothing else yet; processes started later are stopped on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="sentryroute-demo-"))
    try:
        with (
            SentryEmulator(EmulatorConfig()).running_in_thread() as sentry,
            KubeEmulator(kubeconfig_path=workdir / "kubeconfig").running_in_thread() as kube,
        ):
            http, grpc, admin, operator_metrics = free_ports(4)
            stack = Stack(sentry, kube, workdir, http, grpc, admin, operator_metrics)
            try:
                yield stack
            finally:
                stack.stop_processes()
    finally:
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

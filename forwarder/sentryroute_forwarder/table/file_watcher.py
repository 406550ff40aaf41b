"""Polling a routes file — typically a mounted ConfigMap — for changes.

Kubernetes updates a mounted ConfigMap by writing a new timestamped directory and swapping the `..data`
symlink, so the file's own inode and mtime say nothing reliable; the contents are read and compared
(by hash, in `TableLoader`) on every poll. Reading a file under 1 MiB once a second is cheap.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sentryroute_forwarder.table.loader import TableLoader

__all__ = ["RoutesFileWatcher"]

log = logging.getLogger(__name__)

#: A ConfigMap cannot exceed 1 MiB; a larger file is not a routes table, and is not read whole.
_MAX_TABLE_BYTES = 4 * 1024 * 1024
#: While no table is loaded, an unreadable file is logged again every this many polls (30 s at the default 1 s):
#: an unready forwarder must keep saying why, but a stuck one must not flood the log.
REPEAT_EVERY_POLLS = 30


class RoutesFileWatcher:
    def __init__(self, path: Path, *, interval: float, loader: TableLoader) -> None:
        self._path = path
        self._interval = interval
        self._loader = loader
        self._problem: str | None = None  # the last read problem logged, so it is logged once
        self._polls_since_logged = 0

    @property
    def problem(self) -> str | None:
        """Why the file cannot be used right now (None when it can); `/readyz` shows it while unready."""
        return self._problem

    def check(self) -> None:
        """Read the file once and offer its contents to the loader."""
        try:
            with self._path.open("rb") as file:
                raw = file.read(_MAX_TABLE_BYTES + 1)
        except OSError as exc:
            self._report(f"cannot read routes file {self._path}: {exc.strerror or exc}")
            return
        if len(raw) > _MAX_TABLE_BYTES:
            self._report(f"routes file {self._path} is larger than {_MAX_TABLE_BYTES} bytes")
            return
        if self._problem is not None:
            log.info("routes file %s is readable again", self._path)
            self._problem = None
        self._loader.offer(raw, origin=str(self._path))

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            self.check()

    def _report(self, problem: str) -> None:
        unready = self._loader.table is None
        self._polls_since_logged += 1
        if problem != self._problem or (unready and self._polls_since_logged >= REPEAT_EVERY_POLLS):
            if unready:
                log.error("%s; not ready (receivers answer 503) until it can be read", problem)
            else:
                log.warning("%s; keeping the current table", problem)
            self._problem = problem
            self._polls_since_logged = 0

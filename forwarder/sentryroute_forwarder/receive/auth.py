"""Bearer-token authentication of the receivers (`--auth-token-file`).

The file is re-read when it changes (a rotated Secret), checked at most once per second. The token is
compared in constant time and never logged; an empty or unreadable file rejects everyone.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["BearerAuth"]

log = logging.getLogger(__name__)

_CHECK_INTERVAL = 1.0
_SCHEME = "bearer "


class BearerAuth:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._token = b""
        self._stamp: tuple[int, int, int] | None = None
        self._readable = True  # log a failure once, when it starts
        self._checked_at = float("-inf")
        self._refresh()

    def allows(self, authorization: str | None) -> bool:
        """True when `authorization` (an Authorization header value) carries the current token."""
        if self._clock() - self._checked_at >= _CHECK_INTERVAL:
            self._refresh()
        if not self._token or not authorization or authorization[: len(_SCHEME)].lower() != _SCHEME:
            return False
        presented = authorization[len(_SCHEME) :].strip().encode("utf-8", "replace")
        return hmac.compare_digest(presented, self._token)

    def _refresh(self) -> None:
        self._checked_at = self._clock()
        try:
            stat = os.stat(self._path)
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            token = self._path.read_bytes().strip()
        except OSError as exc:
            if self._readable:
                log.error("cannot read --auth-token-file %s: %s; rejecting every request", self._path, exc.strerror)
            self._token, self._stamp, self._readable = b"", None, False
            return
        if not token:
            log.error("--auth-token-file %s is empty; rejecting every request", self._path)
        self._token, self._stamp, self._readable = token, stamp, True

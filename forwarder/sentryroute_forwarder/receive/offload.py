"""A bounded pool of decode workers: inflating and parsing large bodies without stalling the event loop.

Inflating (ISA-L releases the GIL) and OTLP/JSON parsing of a 16 MiB body take tens of milliseconds to
seconds; on the event loop they would stall every receiver, the export lanes and `/readyz`. The pool has
`--decode-workers` threads; what waits for one is bounded by the receivers' concurrency limits, and its
memory is already reserved against `--max-bytes` (`Intake.reserve`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["Offload"]

T = TypeVar("T")


class Offload:
    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sentryroute-decode")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(function, *args))

    def close(self) -> None:
        """Stop the workers (work not started is cancelled; running work finishes in its thread)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

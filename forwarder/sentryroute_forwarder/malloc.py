"""One glibc malloc arena for the whole process, set before any thread starts.

glibc gives threads that allocate at the same time arenas of their own, up to 8 per core, and each keeps
what it freed for its own thread. grpcio's server threads and the handler threads take gRPC messages of a
few hundred KB in and out, so on two cores the process spread about 15 arenas over 3-8 MB each (read from
/proc/<pid>/smaps at saturation). Almost every allocation happens under Python's lock anyway, so one arena
costs no measured throughput; peak RSS on gRPC 10 x 50 fell from 117-122 MB to 107-111 MB, and no shape got
slower (README, "Performance"). `MALLOC_ARENA_MAX` in the environment wins; elsewhere than glibc, nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["use_one_arena"]

_M_ARENA_MAX = -8  # glibc's malloc.h


def use_one_arena() -> bool:
    """Limit malloc to one arena (call before threads start); False when not glibc or the environment decides."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    if mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, 1))

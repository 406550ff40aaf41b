"""The forwarder process limits glibc malloc to one arena, unless MALLOC_ARENA_MAX says otherwise."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

PROBE = "from sentryroute_forwarder.malloc import use_one_arena; print(use_one_arena())"


def probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_one_arena_is_set_by_default() -> None:
    assert probe() == "True"


def test_the_environment_wins() -> None:
    assert probe(MALLOC_ARENA_MAX="4") == "False"

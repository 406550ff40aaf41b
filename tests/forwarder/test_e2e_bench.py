"""The benchmark script stays runnable: a tiny run delivers every span to its counting sink."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "forwarder_bench.py"


def test_bench_runs_and_delivers_everything():
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--system",
            "sentryroute",
            "--rounds",
            "1",
            "--requests",
            "40",
            "--connections",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sentryroute: 20000 spans in" in result.stdout
    assert "µs/span" in result.stdout

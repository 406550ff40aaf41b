"""The benchmark's CPU 0 pace (bench/cpu_pace.py): the probe process samples its loop, a window's pace is the
median of the samples in it, and `--steady-cpu` measures again exactly the rounds slower than their best."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import forwarder_bench  # noqa: E402
from cpu_pace import PaceProbe  # noqa: E402
from forwarder_bench import Round, remeasure_slow_rounds  # noqa: E402
from workloads import SHAPES  # noqa: E402


def test_probe_samples_its_loop(tmp_path: Path) -> None:
    log = tmp_path / "pace.log"
    probe = PaceProbe(log, cpu=None)
    started = time.monotonic_ns()
    probe.start()
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and len(log.read_text().splitlines()) >= 3):
            assert time.monotonic() < deadline, "the probe wrote no samples"
            time.sleep(0.02)
    finally:
        probe.stop()
    assert probe.pace_us(started, time.monotonic_ns()) > 0
    assert math.isnan(probe.pace_us(0, started))  # no sample before it started


def _round(shape: str, system: str, pace: float, items: int = 1000) -> Round:
    return Round(
        shape=shape, system=system, items=items, requests=20, refused=0, upstream_requests=1, upstream_gzipped=1,
        seconds=1.0, cpu_seconds=0.5, p50_ms=1.0, p99_ms=2.0, peak_rss_mb=50.0, harness_cores=0.1,
        cpu0_others_cores=0.0, cpu0_pace_us=pace,
    )  # fmt: skip


class _Bench:
    """Answers each measurement with the next pace of its system (a round costs seconds; the choice is tested)."""

    def __init__(self, paces: dict[str, list[float]]) -> None:
        self.paces = paces
        self.measured: list[str] = []

    async def measure(self, shape: forwarder_bench.Shape, system: str) -> Round:
        self.measured.append(system)
        return _round(shape.name, system, self.paces[system].pop(0), items=2000)


def test_steady_cpu_measures_again_only_the_slow_rounds() -> None:
    shape = SHAPES[0]
    rounds = [
        _round(shape.name, "sentryroute", 100.0),
        _round(shape.name, "rotel", 150.0),  # rotel's own best pace is its baseline, not sentryroute's
        _round(shape.name, "sentryroute", 130.0),  # slow: measured again, twice (the first retry is slower)
        _round(shape.name, "rotel", 155.0),  # within 10 % of rotel's best
    ]
    bench = _Bench({"sentryroute": [140.0, 104.0]})
    asyncio.run(remeasure_slow_rounds(bench, rounds, SHAPES, 10))  # type: ignore[arg-type]
    assert bench.measured == ["sentryroute", "sentryroute"]
    assert [r.cpu0_pace_us for r in rounds] == [100.0, 150.0, 104.0, 155.0]
    assert rounds[2].items == 2000 and rounds[2].remeasured == 2

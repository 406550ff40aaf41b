"""How fast CPU 0 runs at the moment: a fixed computation timed every 50 ms beside the system under test.

This VM's host slows a vCPU for seconds at a time. The guest cannot see it: steal time reads 0 and there are no
hardware counters. Measured on the project's machine, CPU 0 otherwise idle: a fixed pure-Python loop plus a
crc32 of 32 KiB took 130 µs in some seconds and 250 µs in others, in phases of a few seconds. In the
forwarder under load on HTTP gzip 10 x 50, a request's validation took 216 µs in fast phases and 360-400 µs in
slow ones, with the same body at the same address. A loop and a crc32 timed right after it in the same process
slowed by 1.4x and 1.65x in the same phases. So the phases, not the forwarder, moved its CPU per item between
~1.4 and ~2.0 µs from one round to the next, and within one process from one second to the next. rotel's rounds
slow down as well when a phase falls on them: 7.04 µs per item, against 5.98 µs in a fast phase.

The probe is one process pinned to CPU 0 for the whole benchmark. Its loop costs about 0.1 ms every 50 ms
(0.2 % of CPU 0, shown in "CPU 0 others"). A round's pace is the mean loop time during its measured
window, leaving out the slowest tenth of the loops (those the system under test's threads preempted): a
median would hide a slow phase that covers less than half of the window. A system's fast rounds share one
pace, and a round whose pace is much higher ran while the host slowed CPU 0. The pace is compared only
between rounds of one system on one shape: what the system leaves in CPU 0's caches changes the loop's time
a little.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

__all__ = ["PaceProbe"]

#: Sleeps 50 ms between loops; the loop (2,000 additions) is the unit the pace is measured in.
_PROBE = """
import sys, time
out = open(sys.argv[1], "w", buffering=1)
while True:
    started = time.monotonic_ns()
    x = 0
    for i in range(2000):
        x += i
    out.write(f"{started} {time.monotonic_ns() - started}\\n")
    time.sleep(0.05)
"""


class PaceProbe:
    """The probe process (`start`/`stop`) and the pace over a window of `time.monotonic_ns` (`pace_us`)."""

    def __init__(self, log: Path, *, cpu: str | None) -> None:
        self._log = log
        self._cpu = cpu
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-c", _PROBE, str(self._log)]
        if self._cpu is not None:
            command = ["taskset", "-c", self._cpu, *command]
        self._process = subprocess.Popen(command)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait()
            self._process = None

    def pace_us(self, start_ns: int, end_ns: int) -> float:
        """Mean loop time in µs in the window, the slowest tenth left out; NaN when the probe took no sample in
        it (it is not running)."""
        samples = []
        for line in self._log.read_text().splitlines():
            started, _, took = line.partition(" ")
            if took and start_ns <= int(started) <= end_ns:
                samples.append(int(took) / 1000)
        if not samples:
            return float("nan")
        samples.sort()
        return statistics.fmean(samples[: max(1, len(samples) * 9 // 10)])

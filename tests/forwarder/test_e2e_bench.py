"""The benchmark stays runnable: a tiny round over wrk (HTTP) and h2load (gRPC) delivers every item to its sink,
also in a variant with `--namespace-from peer` (the emulated cluster of bench/peers.py, every request attributed
to the load generator's pod)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "forwarder_bench.py"


def test_bench_runs_and_delivers_everything(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    table = tmp_path / "table.markdown"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--system",
            "sentryroute",
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--connections",
            "4",
            "--shapes",
            "http-logs-10x50,grpc-traces-1x50",
            "--variant",
            "peer=--namespace-from peer --batch-timeout 50ms@grpc-traces-1x50",
            "--peer-pods",
            "50",
            "--steady-cpu",
            "10",
            "--json",
            str(report),
            "--markdown",
            str(table),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rounds = json.loads(report.read_text())["rounds"]
    assert [(r["shape"], r["system"]) for r in rounds] == [
        ("http-logs-10x50", "sentryroute"),
        ("grpc-traces-1x50", "sentryroute"),
        ("grpc-traces-1x50", "sentryroute[peer]"),
    ]
    for r in rounds:  # every item the load generator got an answer for arrived at the sink
        assert r["requests"] > 0 and r["items"] == r["requests"] * (500 if r["shape"] == "http-logs-10x50" else 50)
        assert r["derived"]["cpu_us_per_item"] > 0
        assert r["cpu0_pace_us"] > 0  # the pace probe ran beside every round (bench/cpu_pace.py)
    assert "| HTTP logs, 10 services x 50 records |" in table.read_text()
    assert "sentryroute[peer] on gRPC, 1 service x 50 spans" in table.read_text()

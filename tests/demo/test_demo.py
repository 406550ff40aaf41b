"""The README's first command, end to end: `sentryroute demo` must route every service to its project."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_routes_every_service_to_its_project() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sentryroute", "demo", "--timeout", "90"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "OK: 9 services routed to their projects" in output
    # Every scenario's project appears in the per-project table with what it received.
    for line in (
        "payments-api                     12     4  payments-api",
        "ecommerce-orders                 12     4  orders-service",
        "shop-catch-all                   12     4  legacy-reports",
        "prod-monitoring                  12     4  nightly-batch",
        "shop-dev-cart                    12     4  cart",
        "shop-dev-recommendations         12     4  recommendations",
    ):
        assert line in output, output
    # stray-service's 12 spans + 4 log records, counted by the forwarder as dropped (unrouted), each in its column
    assert re.search(r"^\(dropped, unrouted\) +12 +4  stray-service ", output, re.MULTILINE), output
    # A routed project nobody sends to says why it shows 0/0.
    assert re.search(r"^staging-monitoring +0 +0  - +examples/03: routed, but no demo service", output, re.MULTILINE)
    # The scenario numbers are those the example files' own comments give (Sentry's exporter docs numbering).
    for example in sorted((REPO / "examples").glob("0*.yaml")):
        number = re.match(r"# Scenario (\d) of Sentry's exporter docs", example.read_text()).group(1)
        assert f"examples/{example.name[:2]}: " in output and f"(docs scenario {number})" in output, example.name
        assert re.search(rf"examples/{example.name[:2]}: [^(\n]*\(docs scenario {number}\)", output), example.name
    # The emulator's page is only there while the demo runs: it says so, and how to keep it.
    assert "gone when the demo exits" in output and "--keep-running" in output
    assert "sntryu_" not in output and "sntrys_" not in output  # the org token never shows
    assert elapsed < 120, f"the demo took {elapsed:.0f}s"

"""The chart ships byte-identical copies of deploy/crds/ (Helm installs `crds/` but never upgrades them)."""

from __future__ import annotations

import pytest

from tests.chart.rendering import CHART, REPO

SOURCE = REPO / "deploy" / "crds"
COPIES = CHART / "crds"


def test_chart_crds_are_identical_to_deploy_crds() -> None:
    sources = sorted(p.name for p in SOURCE.glob("*.yaml"))
    if "sentryroute.yaml" not in sources:
        pytest.skip("deploy/crds/sentryroute.yaml does not exist yet")
    copies = sorted(p.name for p in COPIES.glob("*.yaml"))
    assert copies == sources, "run: bash scripts/sync-crds.sh"
    for name in sources:
        assert (COPIES / name).read_bytes() == (SOURCE / name).read_bytes(), (
            f"charts/sentryroute/crds/{name} is stale: run bash scripts/sync-crds.sh"
        )

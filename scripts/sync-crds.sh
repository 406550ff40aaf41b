#!/usr/bin/env bash
# Generate the ClusterSentryRoute CRD from the SentryRoute one, then copy the CRDs of deploy/crds/ into the chart
# (tests/chart/test_crds_identical.py keeps them byte-identical, tests/crd/test_cluster_crd.py the generated one).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" scripts/cluster_crd.py
cp deploy/crds/*.yaml charts/sentryroute/crds/
echo "synced: $(ls deploy/crds/*.yaml | tr '\n' ' ')"

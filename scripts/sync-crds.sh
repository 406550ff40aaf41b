#!/usr/bin/env bash
# Copy the CRDs of deploy/crds/ into the chart (tests/chart/test_crds_identical.py keeps them byte-identical).
set -euo pipefail
cd "$(dirname "$0")/.."
cp deploy/crds/*.yaml charts/sentryroute/crds/
echo "synced: $(ls deploy/crds/*.yaml | tr '\n' ' ')"

#!/usr/bin/env bash
# Install Prometheus' own PromQL grammar (@prometheus-io/lezer-promql, pinned in tests/chart/promql/package-lock.json)
# that the chart tests parse the dashboard's and the alert rules' queries with. Needs Node.js >= 20 and npm.
#
# Idempotent: with node_modules matching the lockfile it only says so.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/chart/promql"

fail() {
    echo "install-promql-check: $*" >&2
    exit 1
}

command -v node >/dev/null || fail "Node.js >= 20 is required"
command -v npm >/dev/null || fail "npm is required"
major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$major" -ge 20 ]] || fail "Node.js >= 20 is required (found $(node --version))"

if [[ "$DIR/node_modules/.package-lock.json" -nt "$DIR/package-lock.json" ]]; then
    echo "install-promql-check: tests/chart/promql/node_modules is up to date"
    exit 0
fi
(cd "$DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || fail "npm ci in tests/chart/promql failed"
echo "install-promql-check: installed @prometheus-io/lezer-promql"

#!/usr/bin/env bash
# Install the OpenTelemetry JS SDK exporters (tests/js/package-lock.json: pinned) that the forwarder tests use as a
# second, independent client (tests/forwarder/test_js_clients.py). Needs Node.js >= 20 and npm.
#
# Idempotent: with node_modules matching the lockfile it only says so.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JS="$ROOT/tests/js"

fail() {
    echo "install-js-clients: $*" >&2
    exit 1
}

command -v node >/dev/null || fail "Node.js >= 20 is required"
command -v npm >/dev/null || fail "npm is required"
major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$major" -ge 20 ]] || fail "Node.js >= 20 is required (found $(node --version))"

if [[ "$JS/node_modules/.package-lock.json" -nt "$JS/package-lock.json" ]]; then
    echo "install-js-clients: tests/js/node_modules is up to date"
    exit 0
fi
(cd "$JS" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || fail "npm ci in tests/js failed"
echo "install-js-clients: installed $(cd "$JS" && node -p "Object.keys(require('./package.json').dependencies).join(', ')")"

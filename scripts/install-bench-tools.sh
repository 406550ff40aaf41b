#!/usr/bin/env bash
# Install the benchmark's load generators from Debian: wrk (OTLP/HTTP) and h2load from nghttp2-client (OTLP/gRPC).
#
# Idempotent: with both on PATH it only says so. Needs root (apt-get), as on the project's machines and CI.
set -euo pipefail

if command -v wrk >/dev/null && command -v h2load >/dev/null && command -v taskset >/dev/null; then
    echo "install-bench-tools: wrk and h2load already installed"
    exit 0
fi
echo "install-bench-tools: installing wrk and nghttp2-client (h2load) with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "install-bench-tools: apt-get update failed" >&2; exit 1; }
apt-get install -y -qq wrk nghttp2-client util-linux >/dev/null \
    || { echo "install-bench-tools: apt-get install wrk nghttp2-client failed" >&2; exit 1; }
command -v wrk >/dev/null && command -v h2load >/dev/null || { echo "install-bench-tools: wrk/h2load still missing" >&2; exit 1; }
echo "install-bench-tools: installed $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2) and $(h2load --version | head -1)"

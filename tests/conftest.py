"""Test-wide set-up.

`kubernetes` reads $KUBECONFIG at import time, so it is pointed at a per-run path here, before any test
module imports kubernetes or kopf (docs/testing-without-a-cluster.md).
"""

import os
import tempfile

os.environ.setdefault("KUBECONFIG", os.path.join(tempfile.mkdtemp(prefix="sentryroute-kube-"), "kubeconfig"))


def pytest_report_header() -> str:
    from sentryroute_forwarder.route import wirecheck

    if wirecheck.COMPILED:
        return "wire check: compiled (mypyc)"
    return "wire check: INTERPRETED, ~70x slower: run `make .venv/.dev-installed` to compile it"

"""Test-wide set-up.

`kubernetes` reads $KUBECONFIG at import time, so it is pointed at a per-run path here, before any test
module imports kubernetes or kopf (docs/testing-without-a-cluster.md).
"""

import os
import tempfile

os.environ.setdefault("KUBECONFIG", os.path.join(tempfile.mkdtemp(prefix="sentryroute-kube-"), "kubeconfig"))

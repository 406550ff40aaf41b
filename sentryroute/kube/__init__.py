"""An emulated Kubernetes API for tests and the demo: kmock made to behave like kube-apiserver.

No real API server can be installed here (docs/testing-without-a-cluster.md), so kopf, the `kubernetes`
client and kubectl run against this one. Modules, by question:

- server.py    `KubeEmulator`: serve it on 127.0.0.1 (in a thread or on the current loop), write a kubeconfig,
               apply manifests, inspect objects;
- emulator.py  `RealisticEmulator`: the kmock handler, HTTP to verbs (usable as kmock's pytest fixture class);
- store.py     `ObjectStore`: objects and the API server's rules for changing them;
- watching.py  watch streams (label/field selectors: sentryroute/selectors.py); tables.py `kubectl get` columns;
- crds.py      what creating a CRD does; schemas.py structural pruning and defaulting; openapi.py what kubectl
               reads for `explain` and validation; strategic.py strategic merge patch; builtin_kinds.py
               Secret/ConfigMap rules; objects.py errors, merge/JSON patches and small object helpers;
- main.py      `python -m sentryroute.kube`: the emulator on its own, for kubectl and manual demos.
"""

from sentryroute.kube.emulator import RealisticEmulator
from sentryroute.kube.objects import ApiError
from sentryroute.kube.server import KubeEmulator, write_kubeconfig
from sentryroute.kube.store import ObjectStore

__all__ = ["ApiError", "KubeEmulator", "ObjectStore", "RealisticEmulator", "write_kubeconfig"]

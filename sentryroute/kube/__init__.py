"""An emulated Kubernetes API for tests and the demo: kmock made to behave like kube-apiserver.

`KubeEmulator` runs it (in a thread or on the current loop) and writes a kubeconfig; `RealisticEmulator` is
the kmock handler itself, also usable as kmock's pytest `kmock_cls`.
"""

from sentryroute.kube.emulator import RealisticEmulator
from sentryroute.kube.objects import ApiError
from sentryroute.kube.server import KubeEmulator, write_kubeconfig

__all__ = ["ApiError", "KubeEmulator", "RealisticEmulator", "write_kubeconfig"]

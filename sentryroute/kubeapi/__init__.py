"""One async client for the few Kubernetes API calls both programs make outside kopf.

The operator (its ConfigMaps, SentryRoute status, token Secrets, the report ConfigMap watch) and the forwarder
(the routes ConfigMap watch, the report channel) talk to the API server through this package only: HTTP/1.1 on
httptools (http.py, no aiohttp: the forwarder imports it for nothing else),
credentials resolved the standard way (in-cluster service account, else the kubeconfig) and re-read on a 401
or a reconnect, one error type (`KubeApiError`), and a list+watch that resumes at its resourceVersion and
relists on 410 Gone. kopf keeps its own client for what it watches.
"""

from .access import ApiAccess, load_api_access
from .client import KubeApiError, KubeClient, configmap_path, object_path, secret_path
from .watch import ListWatch, WatchEvent, WatchEventType

__all__ = [
    "ApiAccess",
    "KubeApiError",
    "KubeClient",
    "ListWatch",
    "WatchEvent",
    "WatchEventType",
    "configmap_path",
    "load_api_access",
    "object_path",
    "secret_path",
]

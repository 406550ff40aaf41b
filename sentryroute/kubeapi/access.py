"""Where the API server is and how to authenticate: the standard resolution, through the kubernetes client's
own loaders (in-cluster service account first, else `$KUBECONFIG` / `~/.kube/config`, exec plugins included).

Loading is blocking file work (and, for exec plugins, a process): `KubeClient` runs it in a worker thread and
repeats it after a 401, so rotated service-account tokens are picked up without a restart.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

__all__ = ["ApiAccess", "load_api_access"]


@dataclass(frozen=True, slots=True)
class ApiAccess:
    base_url: str
    headers: dict[str, str]  # Authorization (never logged) and Accept
    ssl_context: ssl.SSLContext | None

    def __repr__(self) -> str:
        return f"ApiAccess(base_url={self.base_url!r})"


def load_api_access(kubeconfig: str | None = None) -> ApiAccess:
    """In-cluster credentials when running in a Pod (and no `kubeconfig` is given), else the kubeconfig."""
    from kubernetes import client, config  # only a process that talks to the API pays for this import

    configuration = client.Configuration()
    try:
        if kubeconfig is not None or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise config.ConfigException("not in a cluster, or a kubeconfig was given")
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        config.load_kube_config(config_file=path, client_configuration=configuration)
    headers = {"Accept": "application/json"}
    authorization = configuration.get_api_key_with_prefix("authorization")
    if authorization:
        headers["Authorization"] = authorization
    context: ssl.SSLContext | None = None
    if configuration.host.startswith("https"):
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return ApiAccess(configuration.host.rstrip("/"), headers, context)

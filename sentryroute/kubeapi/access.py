"""Where the API server is and how to authenticate: the standard resolution (in-cluster service account first,
else `$KUBECONFIG` / `~/.kube/config`).

The two common cases are read here: the in-cluster service account (how both programs run in a cluster) and
a single kubeconfig whose cluster and user need nothing beyond a server, its CA, a bearer token or client
certificate files. Everything else — exec plugins, auth providers, embedded client keys, several kubeconfig
files merged, proxies, TLS server names, basic auth — goes through the kubernetes client's own loaders. Those
import the whole generated API client (~12 MB of resident memory, 320 modules), which the forwarder, whose
memory is bounded, pays only when its credentials need them.

Loading is blocking file work (and, for exec plugins, a process): `KubeClient` runs it in a worker thread and
repeats it after a 401, so rotated service-account tokens are picked up without a restart.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ApiAccess", "load_api_access"]

#: The service account's mount in every Pod (what the kubernetes client's in-cluster loader reads).
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# The kubeconfig keys read here; a cluster or user with any other key goes to the kubernetes loaders.
_CLUSTER_KEYS = frozenset({"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"})
_USER_KEYS = frozenset({"token", "client-certificate", "client-key"})


class _NotSimple(Exception):
    """The credentials need the kubernetes client's loaders (or they report the problem in their words)."""


@dataclass(frozen=True, slots=True)
class ApiAccess:
    base_url: str
    headers: dict[str, str]  # Authorization (never logged) and Accept
    ssl_context: ssl.SSLContext | None

    def __repr__(self) -> str:
        return f"ApiAccess(base_url={self.base_url!r})"


def load_api_access(kubeconfig: str | None = None, *, service_account: Path = SERVICE_ACCOUNT) -> ApiAccess:
    """In-cluster credentials when running in a Pod (and no `kubeconfig` is given), else the kubeconfig."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return _in_cluster(service_account)
        except _NotSimple:
            pass  # as the kubernetes loader does: no usable service account → the kubeconfig
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        return _simple_kubeconfig(path)
    except _NotSimple:
        return _kubernetes_loaders(path)


def _in_cluster(account: Path) -> ApiAccess:
    """What `kubernetes.config.load_incluster_config` reads: the service host and port, the token, the CA."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "")
    try:
        token = (account / "token").read_text().strip()
        ca = account / "ca.crt"
        if not host or not port or not token or not ca.read_text():
            raise _NotSimple
    except (OSError, UnicodeDecodeError):
        raise _NotSimple from None
    server = f"[{host}]" if ":" in host or "%" in host else host
    return ApiAccess(f"https://{server}:{port}", _headers(token), ssl.create_default_context(cafile=str(ca)))


def _simple_kubeconfig(path: str | None) -> ApiAccess:
    """The current context of one kubeconfig file, if it needs only what is read here (else _NotSimple)."""
    import yaml  # only a process that talks to the API pays for this import

    if path is None:
        path = os.path.expanduser("~/.kube/config")
    if os.pathsep in path:
        raise _NotSimple  # several files merged
    try:
        with open(path, encoding="utf-8") as file:
            config = yaml.safe_load(file)
        context = _named(config, "contexts", config["current-context"])["context"]
        cluster = _named(config, "clusters", context["cluster"])["cluster"]
        user = _named(config, "users", context["user"])["user"] if context.get("user") else {}
        user = user or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        raise _NotSimple from None
    if not isinstance(cluster, dict) or not isinstance(user, dict) or not isinstance(cluster.get("server"), str):
        raise _NotSimple
    if not cluster.keys() <= _CLUSTER_KEYS or not user.keys() <= _USER_KEYS:
        raise _NotSimple
    server = cluster["server"].rstrip("/")
    token = user.get("token")
    if token is not None and not isinstance(token, str):
        raise _NotSimple
    if not isinstance(cluster.get("insecure-skip-tls-verify", False), bool):
        raise _NotSimple
    context_ssl = _ssl_context(cluster, user, base=Path(path).absolute().parent) if server.startswith("https") else None
    return ApiAccess(server, _headers(token), context_ssl)


def _named(config: Mapping[str, Any], section: str, name: str) -> Mapping[str, Any]:
    found = [entry for entry in config.get(section) or () if isinstance(entry, dict) and entry.get("name") == name]
    if len(found) != 1:
        raise _NotSimple
    return found[0]


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any], *, base: Path) -> ssl.SSLContext:
    """What the kubernetes client builds from the same keys (relative paths are relative to the kubeconfig)."""
    try:
        if "certificate-authority-data" in cluster:
            pem = base64.b64decode(str(cluster["certificate-authority-data"]), validate=True).decode()
            context = ssl.create_default_context(cadata=pem)
        elif "certificate-authority" in cluster:
            context = ssl.create_default_context(cafile=str(base / str(cluster["certificate-authority"])))
        else:
            context = ssl.create_default_context()
        if "client-certificate" in user:
            key = user.get("client-key")
            context.load_cert_chain(
                str(base / str(user["client-certificate"])), str(base / str(key)) if key is not None else None
            )
    except (OSError, ValueError, binascii.Error, ssl.SSLError):
        raise _NotSimple from None  # the kubernetes loader says what is wrong
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _headers(token: str | None) -> dict[str, str]:
    return {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}


def _kubernetes_loaders(path: str | None) -> ApiAccess:
    """Everything beyond the simple cases, through the kubernetes client (exec plugins, auth providers, …)."""
    from kubernetes import client, config  # ~12 MB: only for credentials that need it

    configuration = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=configuration)
    headers = {"Accept": "application/json"}
    # The loaders keep "Bearer <token>" under `BearerToken` (kubernetes >= 35; "authorization" before): reading
    # only "authorization" sent no credential at all, unseen while the only API server tested accepts anyone.
    authorization = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
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

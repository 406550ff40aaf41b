"""Credentials: the in-cluster service account and simple kubeconfigs are read without the kubernetes client
(whose import costs the forwarder ~12 MB), and read the same as its loaders read them; anything more goes to
those loaders."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentryroute.kubeapi import ApiAccess, load_api_access
from sentryroute.kubeapi.access import _kubernetes_loaders, _simple_kubeconfig


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "here",
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def described(access: ApiAccess) -> dict[str, Any]:
    context = access.ssl_context
    tls = None if context is None else (context.verify_mode, context.check_hostname, context.get_ca_certs())
    return {"url": access.base_url, "headers": access.headers, "tls": tls}


def simple_cases(pki: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    ca_data = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
    return {
        "plain http, token": ({"server": "http://127.0.0.1:8001/"}, {"token": "t0k"}),
        "no user": ({"server": "http://127.0.0.1:8001"}, {}),
        "CA file, relative": (
            {"server": "https://api.example:6443", "certificate-authority": "ca.crt"},
            {"token": "t"},
        ),
        "CA data": ({"server": "https://api.example:6443", "certificate-authority-data": ca_data}, {"token": "t"}),
        "insecure": ({"server": "https://10.0.0.1", "insecure-skip-tls-verify": True}, {"token": "t"}),
        "client certificate": (
            {"server": "https://api.example", "certificate-authority": str(pki / "ca.crt")},
            {"client-certificate": "client.crt", "client-key": "client.key"},
        ),
    }


def test_simple_kubeconfigs_read_as_the_kubernetes_loaders_read_them(pki: Path) -> None:
    for name, (cluster, user) in simple_cases(pki).items():
        path = kubeconfig(pki / "kubeconfig", cluster, user)
        assert described(_simple_kubeconfig(str(path))) == described(_kubernetes_loaders(str(path))), name


def test_simple_kubeconfig_never_imports_the_kubernetes_client(pki: Path) -> None:
    path = kubeconfig(
        pki / "kubeconfig-fresh", {"server": "https://x", "certificate-authority": "ca.crt"}, {"token": "t"}
    )
    code = (
        "import json, sys; from sentryroute.kubeapi import load_api_access;"
        f"access = load_api_access({str(path)!r}); assert access.headers['Authorization'] == 'Bearer t';"
        "print(json.dumps([m for m in sys.modules if m.split('.')[0] == 'kubernetes']))"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(run.stdout) == []


def test_exec_plugins_go_to_the_kubernetes_loaders(pki: Path) -> None:
    plugin = pki / "credential-plugin"
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": "ex"}}
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    user = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactiveMode": "Never"}
    }
    path = kubeconfig(pki / "kubeconfig-exec", {"server": "http://127.0.0.1:8001"}, user)
    assert load_api_access(str(path)).headers["Authorization"] == "Bearer ex"


def test_in_cluster_service_account(pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token")
    shutil.copy(pki / "ca.crt", account / "ca.crt")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    access = load_api_access(service_account=account)
    assert access.base_url == "https://[fd00::1]:443"
    assert access.headers["Authorization"] == "Bearer sa-token"
    assert access.ssl_context is not None and access.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in access.ssl_context.get_ca_certs()] == [((("commonName", "kube-test-ca"),),)]

    # No usable service account (no token yet): the kubeconfig, as the kubernetes loader does.
    (account / "token").unlink()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kc", {"server": "http://127.0.0.1:1"}, {"token": "k"})))
    access = load_api_access(service_account=account)
    assert access.base_url == "http://127.0.0.1:1" and access.headers["Authorization"] == "Bearer k"

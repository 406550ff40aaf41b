"""Test certificates for the Kubernetes client's TLS and credential tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.forwarder.test_receive_security import issue, openssl


@pytest.fixture(scope="package")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA (`ca.crt`), a server certificate for localhost and a client certificate it signed."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    cwd = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=kube-test-ca", cwd=cwd)  # fmt: skip
    issue("server", ca="ca", cwd=cwd, san="DNS:localhost,IP:127.0.0.1")
    issue("client", ca="ca", cwd=cwd, san="DNS:client")
    return cwd

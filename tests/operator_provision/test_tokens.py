"""Token sources: a Kubernetes Secret (kmock API server, official client) and files, re-read on 401."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from sentryroute_operator.kubeio import KubeIO
from sentryroute_operator.provision import FileToken, SecretToken, SentryApi, TokenError

from sentryroute.emulator import SentryEmulator
from sentryroute.kubeapi import ApiAccess, KubeClient

from .conftest import ALL_SCOPES

NAMESPACE = "sentryroute-system"


@pytest.fixture
async def k8s() -> AsyncIterator[tuple[kmock.KubernetesEmulator, Any]]:
    async with kmock.KubernetesEmulator() as km, kmock.Server(km) as server:
        km.resources.load_bundled()
        access = ApiAccess(str(server.url).rstrip("/"), {"Accept": "application/json"}, None)
        kube = KubeIO(KubeClient(access_loader=lambda: access))
        yield km, kube.read_secret_data
        await kube.close()


def _put_secret(km: kmock.KubernetesEmulator, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE}, "data": encoded}
    km.objects["v1/secrets", NAMESPACE, name] = body


async def test_secret_token_is_reread_on_401(k8s: tuple[kmock.KubernetesEmulator, Any], emu: SentryEmulator) -> None:
    km, read_secret = k8s
    old = emu.state.add_token(scopes=ALL_SCOPES)
    _put_secret(km, "sentry-token", {"token": old + "\n"})
    source = SecretToken(read_secret, NAMESPACE, "sentry-token", "token")
    assert old not in repr(source)
    async with SentryApi(base_url=emu.url, org="acme", token=source) as api:
        assert await api.list_teams() == ["backend"]
        new = emu.state.add_token(scopes=ALL_SCOPES)
        _put_secret(km, "sentry-token", {"token": new})
        emu.state.revoke_token(old)
        assert await api.list_teams() == ["backend"]
    assert await source.get() == new


async def test_secret_token_errors_are_clear(k8s: tuple[kmock.KubernetesEmulator, Any]) -> None:
    km, read_secret = k8s
    with pytest.raises(TokenError, match="Secret sentryroute-system/absent key 'token' does not exist"):
        await SecretToken(read_secret, NAMESPACE, "absent", "token").get()
    _put_secret(km, "other-key", {"auth": "value"})
    with pytest.raises(TokenError, match="does not exist"):
        await SecretToken(read_secret, NAMESPACE, "other-key", "token").get()
    _put_secret(km, "with-space", {"token": "two words"})
    with pytest.raises(TokenError, match="whitespace") as info:
        await SecretToken(read_secret, NAMESPACE, "with-space", "token").get()
    assert "two words" not in str(info.value)


async def test_file_token_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="cannot read auth token file"):
        await FileToken(tmp_path / "absent").get()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(TokenError, match="empty"):
        await FileToken(tmp_path / "empty").get()

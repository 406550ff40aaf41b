"""Where the Sentry auth token comes from, and how it is kept out of logs, reprs and exceptions.

A token is held only inside `Secret`, whose repr and str are redacted, so an accidental `log.info("%r", obj)`
or a traceback's locals never print it. Sources re-read their backing store on `refresh()`, which the API
client calls once on a 401: rotating the Secret or the mounted file takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from sentryroute.kubeapi import KubeApiError

from .errors import TokenError

# Printable ASCII without spaces: anything else would be rejected by (or smuggled through) an HTTP header.
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,4096}")


class Secret:
    """A string that never shows itself: `repr()`/`str()` give `Secret('***')`; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def checked_token(raw: str, *, source: str) -> Secret:
    """Strip surrounding whitespace (files end with a newline) and refuse values that cannot be a header."""
    value = raw.strip()
    if not _TOKEN_RE.fullmatch(value):
        raise TokenError(f"auth token from {source} is empty or contains whitespace/non-ASCII characters")
    return Secret(value)


class TokenSource(Protocol):
    """Gives the current token; `refresh()` re-reads it from its backing store (called on a 401)."""

    async def get(self) -> str: ...

    async def refresh(self) -> str: ...


class StaticToken:
    """A token given once (env `SENTRY_AUTH_TOKEN`); `refresh()` has nothing to re-read."""

    def __init__(self, token: str | Secret) -> None:
        self._token = token if isinstance(token, Secret) else checked_token(token, source="the environment")

    async def get(self) -> str:
        return self._token.reveal()

    async def refresh(self) -> str:
        return self._token.reveal()

    def __repr__(self) -> str:
        return "StaticToken(***)"


class FileToken:
    """A token read from a file (a mounted Secret or `SENTRY_AUTH_TOKEN_FILE`); re-read on `refresh()`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._token: Secret | None = None

    async def get(self) -> str:
        if self._token is None:
            return await self.refresh()
        return self._token.reveal()

    async def refresh(self) -> str:
        try:
            raw = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"cannot read auth token file {self.path}: {type(exc).__name__}") from None
        self._token = checked_token(raw, source=f"file {self.path}")
        return self._token.reveal()

    def __repr__(self) -> str:
        return f"FileToken({str(self.path)!r})"


#: Reads a Secret's `data` (base64 values) by (namespace, name); None when the Secret does not exist.
SecretReader = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]


class SecretToken:
    """A token read from a Kubernetes Secret in the operator's own namespace; re-read on `refresh()`."""

    def __init__(self, read_secret: SecretReader, namespace: str, name: str, key: str) -> None:
        self._read_secret = read_secret
        self.namespace, self.name, self.key = namespace, name, key
        self._token: Secret | None = None

    async def get(self) -> str:
        if self._token is None:
            return await self.refresh()
        return self._token.reveal()

    async def refresh(self) -> str:
        where = f"Secret {self.namespace}/{self.name} key {self.key!r}"
        try:
            data = await self._read_secret(self.namespace, self.name)
        except KubeApiError as exc:
            raise TokenError(f"cannot read {where}: {type(exc).__name__} {exc.status or ''}".rstrip()) from None
        encoded = (data or {}).get(self.key)
        if not isinstance(encoded, str):
            raise TokenError(f"{where} does not exist")
        try:
            raw = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TokenError(f"{where} is not valid base64 UTF-8") from None
        self._token = checked_token(raw, source=where)
        return self._token.reveal()

    def __repr__(self) -> str:
        return f"SecretToken({self.namespace!r}, {self.name!r}, {self.key!r})"

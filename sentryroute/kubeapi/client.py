"""`KubeClient`: get, list, create and JSON-merge-patch over HTTP/1.1 (http.py), every failure one `KubeApiError`.

Path segments that come from configuration (namespaces, names) are escaped as one segment each. A 401 re-reads
the credentials once and resends (rotated service-account tokens); any other error status raises with the API
server's own `Status.message`. No method logs request headers, so the bearer token never reaches a log line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from .access import ApiAccess, load_api_access
from .http import Response, open_request

__all__ = ["KubeApiError", "KubeClient", "configmap_path", "object_path", "secret_path", "selector_params"]

_MESSAGE_LIMIT = 300

Items = list[dict[str, Any]]  # a listing's objects (named here: `KubeClient.list` hides the builtin in the class)


class KubeApiError(Exception):
    """A Kubernetes API call failed: an error `status` from the server, or no answer at all (`status` None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def object_path(
    group: str, version: str, plural: str, namespace: str | None, name: str | None = None, subresource: str = ""
) -> str:
    """The REST path of a collection or object: core (`group` "") or named group, namespaced or not."""
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    path = prefix + (f"/namespaces/{quote(namespace, safe='')}" if namespace else "") + f"/{plural}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
        if subresource:
            path += f"/{subresource}"
    return path


def configmap_path(namespace: str, name: str | None = None) -> str:
    return object_path("", "v1", "configmaps", namespace, name)


def secret_path(namespace: str, name: str) -> str:
    return object_path("", "v1", "secrets", namespace, name)


class KubeClient:
    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        timeout: float = 30.0,
        access_loader: Callable[[], ApiAccess] | None = None,
    ) -> None:
        """`kubeconfig`: a file to use instead of the standard resolution; `timeout`: per request (not watches)."""
        self._load: Callable[[], ApiAccess] = access_loader or (lambda: load_api_access(kubeconfig))
        self._access: ApiAccess | None = None
        self._timeout = timeout

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to release (a connection lives for one call); kept so callers need not know."""

    def invalidate(self) -> None:
        """Re-read the credentials before the next request (after a 401 or a broken connection)."""
        self._access = None

    async def access(self) -> ApiAccess:
        if self._access is None:
            try:
                self._access = await asyncio.to_thread(self._load)
            except Exception as exc:  # the kubernetes loaders raise ConfigException, OSError, ValueError, …
                raise KubeApiError(f"cannot load Kubernetes credentials: {type(exc).__name__}: {exc}") from None
        return self._access

    # --- calls ---------------------------------------------------------------------------------------------

    async def get(self, path: str, *, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return await self.request("GET", path, params=params)

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist (404)."""
        try:
            return await self.get(path)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, collection_path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", collection_path, body=body)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 7386 JSON merge patch: a None value removes that key."""
        return await self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    async def list(
        self, collection_path: str, *, field_selector: str | None = None, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item (all pages) and the list's resourceVersion, the point a watch continues from."""
        items: list[dict[str, Any]] = []
        version = ""
        async for page, page_version in self.list_pages(
            collection_path, field_selector=field_selector, label_selector=label_selector
        ):
            items += page
            version = page_version
        return items, version

    async def list_pages(
        self,
        collection_path: str,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[tuple[Items, str]]:
        """The items page by page (at most `limit` each; None: as many as the server sends at once), each with
        the list's resourceVersion. The API server serves every page of one list from the same snapshot
        (`continue`), so a caller that keeps only what it needs of each page never holds the whole list —
        a cluster's Pods are megabytes of JSON and several times that parsed."""
        params = selector_params(field_selector, label_selector)
        if limit is not None:
            params["limit"] = str(limit)
        tokens: set[str] = set()  # a server handing back a token it was sent would have this list forever
        while True:
            listing = await self.get(collection_path, params=params)
            metadata = listing.get("metadata") or {}
            items = [item for item in listing.get("items") or () if isinstance(item, dict)]
            del listing  # only this page's items stay referenced while the caller works on them
            token = metadata.get("continue")
            yield items, str(metadata.get("resourceVersion") or "")
            del items  # not alive while the next page is read
            if not token:
                return
            if str(token) in tokens:
                raise KubeApiError(f"list {collection_path}: the API server repeated a continue token")
            tokens.add(str(token))
            params = {**params, "continue": str(token)}

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        for attempt in (1, 2):
            async with self._send(
                method, path, params=params, data=data, content_type=content_type, total_timeout=self._timeout
            ) as resp:
                if resp.status == 401 and attempt == 1:
                    self.invalidate()
                    continue
                raw = await resp.read()
                if resp.status >= 300:
                    raise KubeApiError(f"{method} {path}: {_status_message(resp.status, raw)}", status=resp.status)
                try:
                    parsed = json.loads(raw) if raw else {}
                except ValueError:
                    raise KubeApiError(f"{method} {path}: the answer is not JSON", status=resp.status) from None
                return parsed if isinstance(parsed, dict) else {}
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def stream(self, path: str, params: Mapping[str, str], *, read_timeout: float) -> AsyncIterator[Response]:
        """A long-running GET (a watch): the response, whose body (`chunks()`) the caller reads as it arrives;
        `read_timeout` bounds each wait for more of it."""
        async with self._send("GET", path, params=params, read_timeout=read_timeout, total_timeout=None) as resp:
            if resp.status == 401:
                self.invalidate()
            if resp.status >= 300:
                raw = await resp.read()
                raise KubeApiError(f"watch {path}: {_status_message(resp.status, raw)}", status=resp.status)
            yield resp

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str = "application/json",
        read_timeout: float | None = None,
        total_timeout: float | None,
    ) -> AsyncIterator[Response]:
        """One call; `total_timeout` bounds it whole, the caller's reading included (None: no bound),
        `read_timeout` each read."""
        access = await self.access()
        headers = dict(access.headers)
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            async with asyncio.timeout(total_timeout):
                async with open_request(
                    method,
                    access.base_url + path,
                    params=params,
                    headers=headers,
                    body=data,
                    ssl_context=access.ssl_context,
                    connect_timeout=min(self._timeout, 10.0),
                    read_timeout=read_timeout,
                ) as resp:
                    yield resp
        except OSError as exc:  # HttpError, TimeoutError and ssl.SSLError are OSErrors
            self.invalidate()  # a new API server address or certificate may be behind it
            raise KubeApiError(f"{method} {path}: {type(exc).__name__}: {str(exc)[:_MESSAGE_LIMIT]}") from None


def selector_params(field_selector: str | None, label_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if field_selector:
        params["fieldSelector"] = field_selector
    if label_selector:
        params["labelSelector"] = label_selector
    return params


def _status_message(status: int, raw: bytes) -> str:
    """`<status> <Status.message>` from the API server's answer (or the start of the body)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    message = parsed.get("message") if isinstance(parsed, dict) else None
    text = message if isinstance(message, str) else raw[:_MESSAGE_LIMIT].decode("utf-8", "replace")
    return f"{status} {' '.join(text.split())[:_MESSAGE_LIMIT]}".strip()

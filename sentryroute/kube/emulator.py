"""`RealisticEmulator`: kmock's in-memory Kubernetes API, answering HTTP the way kube-apiserver does.

kmock 0.8 stores objects and streams watches, but as shipped it cannot run a kopf operator (no
resourceVersion, so kopf's JSON-patch `test` fails) and misleads the official client (POST answers 200, no
list `kind`, ignored label selectors; docs/testing-without-a-cluster.md lists the gaps). This subclass keeps
kmock's parts that tests use (`objects[...]` with history, recorded requests, user reactions that take priority over the
emulation) and routes every Kubernetes verb to an `ObjectStore` (store.py), which holds the API server's rules.

The HTTP side, here: POST answers 201, PUT replaces, PATCH picks merge / JSON / (approximated) server-side
apply by content type, `dryRun=All`, `fieldValidation=Strict` (unknown fields of custom resources are a 400,
as kubectl expects), `labelSelector`/`fieldSelector`, `limit`/`continue` pages, lists with
`kind`/`apiVersion`/`metadata.resourceVersion`, watches (watching.py) with `resourceVersion`,
`timeoutSeconds` and `sendInitialEvents`, deletecollection, Table answers for `kubectl get` (tables.py), a
minimal `/openapi/v3` (openapi.py: `kubectl explain` of custom kinds, `kubectl apply` without
`--validate=false`), `/api/v1` discovery with `groupVersion: v1` (kmock says `/v1`, which breaks kubectl),
`/version/`, URLs of the namespaces resource itself (kmock misparses them), and protobuf bodies of the kinds
kubectl's generators create (protobuf.py; a 415 naming `kubectl apply -f` for other kinds).

Not emulated: CEL validation rules, validation of built-in kinds (beyond ConfigMap and Secret keys and sizes),
admission, RBAC, controllers (a Deployment never gets Pods), namespace existence checks, merge keys of lists
outside strategic.py's table, server-side apply field ownership, protobuf beyond protobuf.py's kinds,
`/openapi/v2`, schemas of built-in kinds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
import multidict
import yaml

from sentryroute.kube.objects import ApiError, api_version_of, meta_of
from sentryroute.kube.openapi import group_version_document, group_version_path, root_document
from sentryroute.kube.protobuf import ProtobufError, decode_object
from sentryroute.kube.store import NAMESPACES, ObjectStore, check_subresource, selects
from sentryroute.kube.tables import as_table, wants_table
from sentryroute.kube.watching import watch_events
from sentryroute.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

__all__ = ["RealisticEmulator"]

# kmock parses /api/v1/namespaces/NAME as "namespace NAME" (and fails on /api/v1/namespaces): such URLs are
# re-routed through a placeholder plural and restored before routing.
_NAMESPACE_URL_RE = re.compile(r"/api/v1/namespaces(?:/[^/]+(?:/(?:status|finalize))?)?/?")
_NAMESPACES_PLACEHOLDER = kmock.resource("", "v1", "namespaces-as-a-resource")
_SEEDED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_OPENAPI_GROUP_VERSION_RE = re.compile(r"/openapi/v3/(api/[^/]+|apis/[^/]+/[^/]+)")
_APPLY_PATCH = "application/apply-patch+yaml"
_PROTOBUF = "application/vnd.kubernetes.protobuf"


@attrs.define(kw_only=True)
class RealisticEmulator(kmock.KubernetesEmulator):
    """kmock's `KubernetesEmulator` behaving like kube-apiserver for kopf, the `kubernetes` client and kubectl.

    Serve it with `sentryroute.kube.KubeEmulator`, or use it as kmock's pytest fixture class with
    `@pytest.mark.kmock(cls=RealisticEmulator)`. Its state is `self.store` (verbs callable from the loop's thread).
    """

    builtin_resources: bool = True  # declare the built-in kinds (k3s discovery dump) and seed the usual namespaces
    history_limit: int = 20  # object versions kept per object in `objects[...].history`
    events_kept: int = 10_000  # watch event log length; older resourceVersions answer 410 Gone
    requests_kept: int | None = 10_000  # recorded requests kept (kmock keeps all; a long demo would grow)
    store: ObjectStore = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()  # kmock's discovery and verb fallbacks, which resolve to the overrides below
        self.fallback[kmock.method.PUT] << self._serve_replace
        self.fallback[kmock.method.DELETE] << self._serve_delete_collection
        self.fallback["get /version/"] << self._serve_server_version
        self.fallback["get /openapi/v3"] << self._serve_openapi_root
        self.fallback["get", _OPENAPI_GROUP_VERSION_RE] << self._serve_openapi_group_version
        self.store = ObjectStore(
            objects=self.objects,
            resources=self.resources,
            history_limit=self.history_limit,
            events_kept=self.events_kept,
        )
        if self.builtin_resources:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # kmock reads its bundle the deprecated way
                self.resources.load_bundled()
            for name in _SEEDED_NAMESPACES:
                self.store.create_object(NAMESPACES, None, {"metadata": {"name": name}})

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if _NAMESPACE_URL_RE.fullmatch(raw_request.path):
            placeholder = raw_request.path.replace("/namespaces", f"/{_NAMESPACES_PLACEHOLDER.plural}", 1)
            url = raw_request.rel_url  # with_path() clears the query: keep ?watch=, ?labelSelector=, ...
            raw_request = raw_request.clone(rel_url=url.with_path(placeholder).with_query(url.query))
        if raw_request.headers.get("Content-Type", "").startswith(_PROTOBUF) and raw_request.can_read_body:
            # kubectl's generators (`kubectl create namespace|secret ...`) send protobuf; manifests (`-f`) JSON.
            try:
                raw_request = await _as_json(raw_request)
            except ProtobufError as exc:
                unsupported = ApiError(415, "UnsupportedMediaType", str(exc))
                return aiohttp.web.json_response(unsupported.status(), status=415)
        return await super().__call__(raw_request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle: it writes state before routing; here the store's verbs write it.
        if request.resource == _NAMESPACES_PLACEHOLDER:
            original = request
            path = request.url.path.replace(f"/{_NAMESPACES_PLACEHOLDER.plural}", "/namespaces", 1)
            url = request.url.with_path(path).with_query(request.url.query)
            request = attrs.evolve(request, resource=NAMESPACES, url=url)
            index = next(i for i in range(len(self._requests) - 1, -1, -1) if self._requests[i] is original)
            self._requests[index] = request  # what a test inspecting kmock's requests expects to see
        if self.requests_kept is not None and len(self._requests) > self.requests_kept:
            del self._requests[: len(self._requests) - self.requests_kept]
        return await kmock.RawHandler._handle(self, request)

    def _get_resources(self) -> list[kmock.resource]:
        # Declared resources only (plus those user reactions name). kmock adds the resources of stored objects,
        # deleted ones included, and its discovery would then re-declare the resource of a deleted CRD.
        return kmock.KubernetesScaffold._get_resources(self)

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_version(request)
        if not isinstance(payload, dict) or request.resource is None:
            return payload
        if request.resource.group == "":
            payload["groupVersion"] = request.resource.version  # kmock says "/v1"; kubectl then misses core kinds
        for entry in payload.get("resources", ()):
            if "/" in entry["name"]:  # kmock copies names and verbs to subresources: kubectl warns of ambiguity
                verbs = ["get", "patch", "update"] if entry["name"].endswith("/status") else ["get"]
                entry.update(singularName="", shortNames=[], categories=[], verbs=verbs)
        return payload

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Response:
        def fetch() -> dict[str, Any]:
            resource, name = _required(request.resource), _required(request.name)
            check_subresource(self.store.info(resource), request.subresource)
            obj = self.store.get_object(resource, request.namespace, name)
            return self._table_or(request, [obj], obj)

        return _respond(200, fetch)

    async def _serve_list(self, request: kmock.Request) -> kmock.Response:
        def listing() -> dict[str, Any]:
            info = self.store.info(request.resource)
            resource = _required(request.resource)
            labels, fields = _selectors(request)
            items = self.store.list_objects(resource, request.namespace, labels=labels, fields=fields)
            items, metadata = _page(items, request.params, revision=self.store.revision)
            answer = {"apiVersion": api_version_of(resource), "kind": f"{info.kind}List", "metadata": metadata}
            return self._table_or(request, items, dict(answer, items=items))

        return _respond(200, listing)

    async def _serve_create(self, request: kmock.Request) -> kmock.Response:
        def create() -> dict[str, Any]:
            resource = _required(request.resource)
            return self.store.create_object(
                resource, request.namespace, request.data, strict_fields=_strict(request), dry_run=_dry_run(request)
            )

        return _respond(201, create)

    async def _serve_update(self, request: kmock.Request) -> kmock.Response:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == _APPLY_PATCH:
            return await self._serve_apply(request)
        return _respond(
            200,
            lambda: self.store.patch_object(
                _required(request.resource),
                request.namespace,
                _required(request.name),
                request.data,
                content_type=content_type,
                subresource=request.subresource,
                strict_fields=_strict(request),
                dry_run=_dry_run(request),
            ),
        )

    async def _serve_apply(self, request: kmock.Request) -> kmock.Response:
        """Server-side apply, approximated: create when missing, else merge (no field ownership)."""
        resource, name = _required(request.resource), _required(request.name)
        try:
            body = yaml.safe_load(request.text) or {}
            exists = self.store.find_object(resource, request.namespace, name) is not None
        except ApiError as exc:
            return kmock.Response(status=exc.code, payload=exc.status())
        except yaml.YAMLError as exc:
            return kmock.Response(status=400, payload=ApiError(400, "BadRequest", str(exc)).status())
        options: dict[str, Any] = {"strict_fields": _strict(request), "dry_run": _dry_run(request)}
        if not exists and request.subresource is None:
            return _respond(201, lambda: self.store.create_object(resource, request.namespace, body, **options))
        return _respond(
            200,
            lambda: self.store.patch_object(
                resource, request.namespace, name, body, subresource=request.subresource, **options
            ),
        )

    async def _serve_replace(self, request: kmock.Request) -> kmock.Response:
        if request.resource is None or request.name is None:
            not_allowed = ApiError(405, "MethodNotAllowed", "PUT needs an object URL")
            return kmock.Response(status=not_allowed.code, payload=not_allowed.status())
        resource, name = request.resource, request.name
        return _respond(
            200,
            lambda: self.store.replace_object(
                resource,
                request.namespace,
                name,
                request.data,
                subresource=request.subresource,
                strict_fields=_strict(request),
                dry_run=_dry_run(request),
            ),
        )

    async def _serve_delete(self, request: kmock.Request) -> kmock.Response:
        options = request.data if isinstance(request.data, Mapping) else {}
        policy = options.get("propagationPolicy") or request.params.get("propagationPolicy")
        return _respond(
            200,
            lambda: self.store.delete_object(
                _required(request.resource),
                request.namespace,
                _required(request.name),
                preconditions=options.get("preconditions"),
                orphan=policy == "Orphan",
                dry_run=_dry_run(request),
            ),
        )

    async def _serve_delete_collection(self, request: kmock.Request) -> kmock.Response:
        def delete_all() -> dict[str, Any]:
            info = self.store.info(request.resource)
            resource = _required(request.resource)
            labels, fields = _selectors(request)
            deleted = [
                self.store.delete_object(
                    resource, meta_of(obj).get("namespace"), meta_of(obj)["name"], dry_run=_dry_run(request)
                )
                for obj in self.store.list_objects(resource, request.namespace, labels=labels, fields=fields)
            ]
            return {
                "apiVersion": api_version_of(resource),
                "kind": f"{info.kind}List",
                "metadata": {},
                "items": deleted,
            }

        return _respond(200, delete_all)

    def _serve_watch(self, request: kmock.Request) -> kmock.Response:  # type: ignore[override]
        try:
            self.store.info(request.resource)
            labels, fields = _selectors(request)
            lifetime = float(request.params.get("timeoutSeconds") or 0) or None
            since_text = request.params.get("resourceVersion") or "0"
            since = int(since_text) if since_text != "0" else None
        except ApiError as exc:
            return kmock.Response(status=exc.code, payload=exc.status())
        except ValueError as exc:
            return kmock.Response(status=400, payload=ApiError(400, "BadRequest", str(exc)).status())

        def selected(obj: Mapping[str, Any]) -> bool:
            meta = meta_of(obj)
            return (
                (request.namespace is None or meta.get("namespace") == request.namespace)
                and (request.name is None or meta.get("name") == request.name)
                and selects(obj, labels=labels, fields=fields)
            )

        stream = watch_events(
            self.store,
            _required(request.resource),
            namespace=request.namespace,
            selected=selected,
            since=since,
            send_initial_events=request.params.get("sendInitialEvents") == "true",
            lifetime=lifetime,
        )
        return kmock.Response(status=200, headers={"Content-Type": "application/json"}, payload=stream)

    async def _serve_openapi_root(self, request: kmock.Request) -> kmock.Payload:
        return root_document(self._openapi_documents())

    async def _serve_openapi_group_version(self, request: kmock.Request) -> kmock.Response:
        path = request.url.path.removeprefix("/openapi/v3/")
        document = self._openapi_documents().get(path)
        if document is None:
            missing = ApiError(404, "NotFound", f"no OpenAPI document for {path}")
            return kmock.Response(status=missing.code, payload=missing.status())
        return kmock.Response(status=200, payload=document)

    def _openapi_documents(self) -> dict[str, dict[str, Any]]:
        by_group_version: dict[tuple[str, str], list[Any]] = {}
        for resource in self.resources:
            info = self.resources[resource]
            if resource.group is not None and resource.version is not None and info.kind:
                kind = (resource, info, self.store.schema(resource))
                by_group_version.setdefault((resource.group, resource.version), []).append(kind)
        return {
            group_version_path(group, version): group_version_document(group, version, kinds)
            for (group, version), kinds in by_group_version.items()
        }

    def _table_or(
        self, request: kmock.Request, objects: list[dict[str, Any]], default: dict[str, Any]
    ) -> dict[str, Any]:
        """`kubectl get` asks for a Table (server-side printing of the printer columns); others get JSON."""
        if not wants_table(request.headers.get("Accept", "")) or request.resource is None:
            return default
        return as_table(
            objects,
            columns=self.store.printer_columns(request.resource),
            resource_version=str(self.store.revision),
            include_object=request.params.get("includeObject", "Metadata"),
        )


async def _as_json(raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.BaseRequest:
    """The same request with its protobuf body decoded to JSON, before kmock parses it (kmock reads text)."""
    headers = multidict.CIMultiDict(raw_request.headers)
    headers["Content-Type"] = "application/json"
    headers.popall("Content-Length", None)
    clone = raw_request.clone(headers=headers)  # must happen before the body is read
    clone._read_bytes = json.dumps(decode_object(await clone.read())).encode()  # aiohttp's body cache; no setter
    return clone


def _respond(status: int, verb: Callable[[], dict[str, Any]]) -> kmock.Response:
    """Every answer carries its status explicitly: kmock keeps the last one on the reaction otherwise."""
    try:
        return kmock.Response(status=status, payload=verb())
    except ApiError as exc:
        return kmock.Response(status=exc.code, payload=exc.status())


def _page(
    items: list[dict[str, Any]], params: Mapping[str, str], *, revision: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`limit`/`continue`: the items after the token's position, at most `limit`, and the next token if any."""
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if token := params.get("continue"):
        try:
            after = tuple(json.loads(base64.urlsafe_b64decode(token.encode()))["after"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ApiError(400, "BadRequest", "invalid continue token") from exc
        items = [obj for obj in items if _position(obj) > after]
    limit = int(params.get("limit") or 0)
    if 0 < limit < len(items):
        metadata["remainingItemCount"] = len(items) - limit
        items = items[:limit]
        position = json.dumps({"after": list(_position(items[-1]))})
        metadata["continue"] = base64.urlsafe_b64encode(position.encode()).decode()
    return items, metadata


def _position(obj: Mapping[str, Any]) -> tuple[str, str]:
    return meta_of(obj).get("namespace") or "", meta_of(obj).get("name") or ""


def _selectors(request: kmock.Request) -> tuple[LabelSelector, FieldSelector]:
    try:
        return (
            parse_label_selector(request.params.get("labelSelector")),
            parse_field_selector(request.params.get("fieldSelector")),
        )
    except SelectorError as exc:
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {exc}") from exc


def _required(value: Any) -> Any:
    """kmock routes verbs by URL shape, so the parts that shape implies are present; say so to mypy."""
    assert value is not None
    return value


def _strict(request: kmock.Request) -> bool:
    """`fieldValidation=Strict` (kubectl's default): unknown fields are an error, not silently pruned."""
    return request.params.get("fieldValidation") == "Strict"


def _dry_run(request: kmock.Request) -> bool:
    return request.params.get("dryRun") == "All"

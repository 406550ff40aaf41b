"""`RealisticEmulator`: kmock's in-memory Kubernetes API with the server semantics real clients depend on.

kmock 0.8 stores objects and streams watches, but as shipped it cannot run a kopf operator (no
resourceVersion, so kopf's JSON-patch `test` fails) and misleads the official client (POST answers 200, no
list `kind`, ignored label selectors, ...). This subclass keeps kmock's storage (`objects[...]` with history,
request recording, user reactions that take priority) and replaces the verbs with kube-apiserver behaviour,
as measured in `k8s-testing.md`:

- `metadata.uid`/`creationTimestamp`/`resourceVersion`/`generation`; one cluster-wide revision counter bumped
  on every write; `generation` bumps only when something other than metadata and status changes; a write
  that changes nothing is a no-op (no new revision, no watch event), so an operator patching the same
  status twice does not wake itself up;
- POST answers 201; `metadata.namespace` comes from the URL; `generateName`; 409 on duplicates; 404 for
  objects and for resources nobody declared (create the CRD first, as in a real cluster);
- PATCH as merge (RFC 7386), JSON patch (RFC 6902; a failed `test` is 422) or an approximation of
  server-side apply (create or merge); strategic merge is treated as a merge patch (lists are replaced);
- PUT (replace), optimistic concurrency (409 on a stale `metadata.resourceVersion`), dryRun;
- the status subresource split: main-resource writes keep the stored status, `/status` writes change only
  the status;
- DELETE with finalizers (`deletionTimestamp`, the object goes once the finalizers are empty), no new
  finalizers on a deleting object, background garbage collection through `ownerReferences`, namespace
  deletion removing its contents, deletecollection;
- `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `k`, `!k`, `>`, `<`) and `fieldSelector` on list and
  watch; lists carry `kind`, `apiVersion` and `metadata.resourceVersion`;
- watches resume from `resourceVersion` (an event log; a too old version is 410 Gone, as kopf expects),
  translate label-selector transitions into ADDED/DELETED, and honour `timeoutSeconds`;
- creating a CustomResourceDefinition serves its resource (discovery included) and marks it Established;
  deleting it removes the resource and its objects;
- `/api/v1` discovery says `groupVersion: v1` (kmock says `/v1`, which breaks kubectl), `/version/` works.

Not emulated: schema validation and defaulting, admission, RBAC, controllers (a Deployment never gets
Pods), strategic-merge list semantics, server-side apply field ownership, protobuf, `/openapi/v2`.

All verbs are synchronous methods that run on the event loop's thread: nothing awaits inside a write, so
no lock is needed and watchers never see half a write.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import random
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from sentryroute.kube.crds import CRD_RESOURCE, established_status, served_resources
from sentryroute.kube.objects import ApiError, apply_json_patch, check_name, merge_patch, now_timestamp, spec_view
from sentryroute.kube.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

__all__ = ["ObjectKey", "RealisticEmulator"]

ObjectKey = tuple[kmock.resource, str | None, str]

NAMESPACES = kmock.resource("", "v1", "namespaces")
# kmock parses /api/v1/namespaces/NAME as "namespace NAME" (and fails on /api/v1/namespaces): such URLs are
# re-routed through a placeholder plural and restored before routing.
_NAMESPACE_URL_RE = re.compile(r"/api/v1/namespaces(?:/[^/]+(?:/(?:status|finalize))?)?/?")
_NAMESPACES_PLACEHOLDER = kmock.resource("", "v1", "namespaces-as-a-resource")
PODS = kmock.resource("", "v1", "pods")
_SEEDED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_SERVER_OWNED_METADATA = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
)
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the API server's, no vowels: no accidental words
_JSON_PATCH = "application/json-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"
_PROTOBUF = "application/vnd.kubernetes.protobuf"


@dataclass(frozen=True)
class WatchEvent:
    """One committed write, kept in the event log that watches replay from a resourceVersion."""

    revision: int
    resource: kmock.resource
    type: str  # ADDED, MODIFIED or DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@attrs.define(kw_only=True)
class RealisticEmulator(kmock.KubernetesEmulator):
    """kmock's `KubernetesEmulator` behaving like kube-apiserver for kopf, the `kubernetes` client and kubectl.

    Usable as `kmock_cls` and wherever kmock's emulator is; `sentryroute.kube.KubeEmulator` serves it on a port.
    """

    builtin_resources: bool = True  # declare the built-in kinds (k3s discovery dump) and seed the usual namespaces
    history_limit: int = 20  # object versions kept per object in `objects[...].history`
    events_kept: int = 10_000  # watch event log length; older resourceVersions answer 410 Gone
    requests_kept: int | None = 10_000  # recorded requests kept (kmock keeps all; a long demo would grow)

    _revision: int = attrs.field(default=0, init=False)
    _events: collections.deque[WatchEvent] = attrs.field(factory=collections.deque, init=False)
    _forgotten_revision: int = attrs.field(default=0, init=False)
    _changed: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _closing: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()  # kmock's discovery and verb fallbacks, which resolve to the overrides below
        self.fallback[kmock.method.PUT] << self._serve_replace
        self.fallback[kmock.method.DELETE] << self._serve_delete_collection
        self.fallback["get /version/"] << self._serve_server_version
        if self.builtin_resources:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # kmock reads its bundle the deprecated way
                self.resources.load_bundled()
            for name in _SEEDED_NAMESPACES:
                self.create_object(NAMESPACES, None, {"metadata": {"name": name}})

    # ----------------------------------------------------------------------------------------------------------
    # The verbs (synchronous; call them on the emulator's event loop thread).

    def get_object(self, resource: kmock.resource, namespace: str | None, name: str) -> dict[str, Any]:
        info = self._info(resource)
        key = self._key(resource, info, namespace, name)
        return self._existing(key)

    def list_objects(
        self,
        resource: kmock.resource,
        namespace: str | None = None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
    ) -> list[dict[str, Any]]:
        """Current objects, all namespaces when `namespace` is None, ordered by namespace and name like etcd."""
        self._info(resource)
        found = [
            record.raw
            for (res, ns, _), record in self.objects.items()
            if res == resource and not record.deleted and (namespace is None or ns == namespace)
        ]
        found = [obj for obj in found if _selected(obj, labels=labels, fields=fields)]
        return sorted(found, key=lambda obj: (_meta(obj).get("namespace") or "", _meta(obj).get("name") or ""))

    def create_object(
        self, resource: kmock.resource, namespace: str | None, body: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        info = self._info(resource)
        obj = _object_body(body)
        meta = obj["metadata"]
        if info.namespaced:
            if namespace is None:
                raise ApiError(404, "NotFound", f"{resource.plural} is namespaced: POST to a namespace's URL")
            if meta.get("namespace") not in (None, "", namespace):
                raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace on the URL")
            meta["namespace"] = namespace
        elif info.namespaced is False:
            if namespace is not None:
                raise ApiError(404, "NotFound", f"{resource.plural} is cluster-scoped: it has no namespaced URL")
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(_GENERATE_NAME_ALPHABET, k=5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        if not meta.get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        key = self._key(resource, info, meta.get("namespace"), check_name(meta["name"]))
        if self._current(key) is not None:
            raise ApiError(
                409, "AlreadyExists", f'{_plural_group(resource)} "{key[2]}" already exists', details=_details(key)
            )
        if resource == CRD_RESOURCE:
            served_resources(obj)  # validates before anything is stored
        obj.setdefault("apiVersion", _api_version(resource))
        obj.setdefault("kind", info.kind)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_timestamp(), generation=1)
        if "status" in info.subresources:
            obj.pop("status", None)  # a create through the main resource never sets status
        if resource == NAMESPACES:
            obj["status"] = {"phase": "Active"}
        elif resource == PODS:
            obj["status"] = {"phase": "Pending"}
        if dry_run:
            return obj
        created = self._commit(key, "ADDED", obj, None)
        self._after_write(key, None, created)
        return created

    def patch_object(
        self,
        resource: kmock.resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str = "application/merge-patch+json",
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        info = self._info(resource)
        key = self._key(resource, info, namespace, name)
        old = self._existing(key)
        _check_subresource(info, subresource)
        if content_type == _JSON_PATCH or isinstance(patch, list):
            candidate = apply_json_patch(old, patch if isinstance(patch, list) else [])
        elif isinstance(patch, Mapping):
            _check_resource_version(key, old, patch)
            candidate = merge_patch(old, patch)
        else:
            raise ApiError(400, "BadRequest", "the body of a merge patch must be a JSON object")
        return self._update(key, info, old, candidate, subresource=subresource, dry_run=dry_run)

    def replace_object(
        self,
        resource: kmock.resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        info = self._info(resource)
        key = self._key(resource, info, namespace, name)
        old = self._existing(key)
        _check_subresource(info, subresource)
        candidate = _object_body(body)
        if candidate["metadata"].get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if candidate["metadata"].get("namespace") not in (None, "", namespace):
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace on the URL")
        _check_resource_version(key, old, candidate)
        return self._update(key, info, old, candidate, subresource=subresource, dry_run=dry_run)

    def delete_object(
        self,
        resource: kmock.resource,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
        orphan: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        info = self._info(resource)
        key = self._key(resource, info, namespace, name)
        old = self._existing(key)
        for field in ("uid", "resourceVersion"):
            expected = (preconditions or {}).get(field)
            if expected is not None and _meta(old).get(field) != expected:
                raise ApiError(
                    409, "Conflict", f"Precondition failed: {field} in precondition: {expected}", details=_details(key)
                )
        if dry_run:
            return old
        if not _meta(old).get("finalizers"):
            return self._remove(key, old, orphan=orphan)
        if _meta(old).get("deletionTimestamp"):
            return old
        marked = copy.deepcopy(old)
        marked["metadata"].update(deletionTimestamp=now_timestamp(), deletionGracePeriodSeconds=0)
        return self._commit(key, "MODIFIED", marked, old)

    def apply_document(self, doc: Mapping[str, Any], *, namespace: str = "default") -> dict[str, Any]:
        """Create or replace one manifest, like `kubectl apply` of a full object; its status goes through `/status`.

        `namespace` is used when a namespaced manifest names none (kubectl's default namespace).
        """
        resource, info = self.resource_for(str(doc.get("apiVersion")), str(doc.get("kind")))
        name = str(_meta(doc).get("name"))
        ns = (_meta(doc).get("namespace") or namespace) if info.namespaced else None
        body = copy.deepcopy(dict(doc))
        body.setdefault("metadata", {}).pop("resourceVersion", None)
        if ns is not None:
            body["metadata"]["namespace"] = ns
        if self._current(self._key(resource, info, ns, name)) is None:
            result = self.create_object(resource, ns, body)
        else:
            result = self.replace_object(resource, ns, name, body)
        if "status" in doc and "status" in info.subresources:
            result = self.replace_object(resource, ns, name, {"status": doc["status"]}, subresource="status")
        return result

    def resource_for(self, api_version: str, kind: str) -> tuple[kmock.resource, kmock.ResourceInfo]:
        """The declared resource serving `kind` in `apiVersion` (what kubectl finds through discovery)."""
        group, _, version = api_version.rpartition("/")
        for resource in self.resources:
            info = self.resources[resource]
            if resource.group == group and resource.version == version and info.kind == kind:
                return resource, info
        raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')

    def stop_watches(self) -> None:
        """End every open watch stream (on shutdown: a server waits for in-flight responses)."""
        self._closing = True
        self._changed.set()

    # ----------------------------------------------------------------------------------------------------------
    # Storage: one place that assigns revisions, stores versions and logs events.

    def _commit(
        self, key: ObjectKey, event_type: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        if key not in self.objects:
            self.objects[key] = obj
        else:
            record = self.objects[key]
            record.history.append(obj)
            if event_type == "DELETED":
                record.delete()
            if len(record.history) > self.history_limit:
                del record.history[: len(record.history) - self.history_limit]
        if len(self._events) >= self.events_kept:
            self._forgotten_revision = self._events.popleft().revision
        self._events.append(WatchEvent(self._revision, key[0], event_type, obj, old))
        self._changed.set()
        self._changed = asyncio.Event()
        return obj

    def _update(
        self,
        key: ObjectKey,
        info: kmock.ResourceInfo,
        old: dict[str, Any],
        candidate: Mapping[str, Any],
        *,
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        """The part of PATCH and PUT after the new content is known: the status split and server-owned fields."""
        if subresource == "status":
            new = copy.deepcopy(old)
            new.pop("status", None)
            if candidate.get("status") is not None:
                new["status"] = copy.deepcopy(candidate["status"])
        else:
            new = copy.deepcopy(dict(candidate))
            if "status" in info.subresources:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        if not isinstance(new.get("metadata", {}), dict):
            raise ApiError(422, "Invalid", "metadata must be an object")
        meta, old_meta = new.setdefault("metadata", {}), _meta(old)
        for field in _SERVER_OWNED_METADATA:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        added_finalizers = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
        if old_meta.get("deletionTimestamp") and added_finalizers:
            raise ApiError(
                422, "Forbidden", "metadata.finalizers: Forbidden: no new finalizers can be added to a deleting object"
            )
        if new == old:
            return old  # nothing changed: no new resourceVersion, no watch event
        if spec_view(new) != spec_view(old):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        if key[0] == CRD_RESOURCE:
            served_resources(new)
        if dry_run:
            return new
        updated = self._commit(key, "MODIFIED", new, old)
        self._after_write(key, old, updated)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(key, updated, orphan=False)
        return updated

    def _remove(self, key: ObjectKey, old: dict[str, Any], *, orphan: bool) -> dict[str, Any]:
        removed = self._commit(key, "DELETED", copy.deepcopy(old), old)
        self._after_write(key, old, None)
        if not orphan:
            self._collect_garbage(owner_uid=_meta(old).get("uid"), namespace=key[1])
        return removed

    def _after_write(self, key: ObjectKey, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """What controllers of a real cluster do at once: serve CRDs, empty deleted namespaces."""
        resource = key[0]
        if resource == CRD_RESOURCE:
            before = served_resources(old) if old is not None else {}
            after = served_resources(new) if new is not None else {}
            for gone in before.keys() - after.keys():
                self._purge(gone)
            for resource_served, info_served in after.items():
                self.resources[resource_served] = info_served
            if old is None and new is not None:
                info = self._info(CRD_RESOURCE)
                self._update(key, info, new, {"status": established_status(new)}, subresource="status", dry_run=False)
        elif resource == NAMESPACES and new is None:
            for res, ns, name in [k for k, record in self.objects.items() if k[1] == key[2] and not record.deleted]:
                if res in self.resources and self.resources[res].namespaced:
                    self.delete_object(res, ns, name)

    def _purge(self, resource: kmock.resource) -> None:
        """A deleted CRD takes its objects with it, finalizers or not."""
        for key in [k for k, record in self.objects.items() if k[0] == resource and not record.deleted]:
            self._commit(key, "DELETED", copy.deepcopy(self.objects[key].raw), self.objects[key].raw)
        del self.resources[resource]

    def _collect_garbage(self, *, owner_uid: str | None, namespace: str | None) -> None:
        """Background deletion of dependents whose `ownerReferences` name the removed owner."""
        if not owner_uid:
            return
        for (res, ns, name), record in list(self.objects.items()):
            if record.deleted or (namespace is not None and ns != namespace):
                continue
            owners = _meta(record.raw).get("ownerReferences") or ()
            if any(isinstance(owner, Mapping) and owner.get("uid") == owner_uid for owner in owners):
                self.delete_object(res, ns, name)

    def _info(self, resource: kmock.resource | None) -> kmock.ResourceInfo:
        if resource is None or resource.plural is None or resource not in self.resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return self.resources[resource]

    def _key(self, resource: kmock.resource, info: kmock.ResourceInfo, namespace: str | None, name: str) -> ObjectKey:
        if info.namespaced and namespace is None:
            raise ApiError(404, "NotFound", f"{resource.plural} is namespaced: use a namespace's URL")
        if info.namespaced is False and namespace is not None:
            raise ApiError(404, "NotFound", f"{resource.plural} is cluster-scoped: it has no namespaced URL")
        return resource, namespace, name

    def _current(self, key: ObjectKey) -> dict[str, Any] | None:
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw

    def _existing(self, key: ObjectKey) -> dict[str, Any]:
        obj = self._current(key)
        if obj is None:
            raise ApiError(404, "NotFound", f'{_plural_group(key[0])} "{key[2]}" not found', details=_details(key))
        return obj

    # ----------------------------------------------------------------------------------------------------------
    # HTTP: kmock routes each request to one of these (user reactions registered on the emulator come first).

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if _NAMESPACE_URL_RE.fullmatch(raw_request.path):
            placeholder = raw_request.path.replace("/namespaces", f"/{_NAMESPACES_PLACEHOLDER.plural}", 1)
            raw_request = raw_request.clone(rel_url=raw_request.rel_url.with_path(placeholder))
        return await super().__call__(raw_request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle: it writes state before routing; here the verbs below write it.
        if request.resource == _NAMESPACES_PLACEHOLDER:
            original = request
            path = request.url.path.replace(f"/{_NAMESPACES_PLACEHOLDER.plural}", "/namespaces", 1)
            request = attrs.evolve(request, resource=NAMESPACES, url=request.url.with_path(path))
            index = next(i for i in range(len(self._requests) - 1, -1, -1) if self._requests[i] is original)
            self._requests[index] = request  # what the test inspecting kmock's requests expects to see
        if self.requests_kept is not None and len(self._requests) > self.requests_kept:
            del self._requests[: len(self._requests) - self.requests_kept]
        if request.body and request.headers.get("Content-Type", "").startswith(_PROTOBUF):
            # kubectl's generators (`kubectl create secret ...`) send protobuf; manifests (`-f`) go as JSON.
            unsupported = ApiError(415, "UnsupportedMediaType", "the emulator reads JSON bodies only, not protobuf")
            return aiohttp.web.json_response(unsupported.status(), status=415)
        return await kmock.RawHandler._handle(self, request)

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and request.resource is not None and request.resource.group == "":
            payload["groupVersion"] = request.resource.version  # kmock says "/v1"; kubectl then misses core kinds
        return payload

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Response:
        def fetch() -> dict[str, Any]:
            resource = request.resource
            _check_subresource(self._info(resource), request.subresource)
            assert resource is not None and request.name is not None  # routed here by kmock only when present
            return self.get_object(resource, request.namespace, request.name)

        return _respond(200, fetch)

    async def _serve_list(self, request: kmock.Request) -> kmock.Response:
        def listing() -> dict[str, Any]:
            info = self._info(request.resource)
            assert request.resource is not None
            labels, fields = _selectors(request)
            items = self.list_objects(request.resource, request.namespace, labels=labels, fields=fields)
            return {
                "apiVersion": _api_version(request.resource),
                "kind": f"{info.kind}List",
                "metadata": {"resourceVersion": str(self._revision)},
                "items": items,
            }

        return _respond(200, listing)

    async def _serve_create(self, request: kmock.Request) -> kmock.Response:
        def create() -> dict[str, Any]:
            assert request.resource is not None
            return self.create_object(request.resource, request.namespace, request.data, dry_run=_dry_run(request))

        return _respond(201, create)

    async def _serve_update(self, request: kmock.Request) -> kmock.Response:
        resource, name = request.resource, request.name
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == _APPLY_PATCH:
            return await self._serve_apply(request)
        return _respond(
            200,
            lambda: self.patch_object(
                _known(resource),
                request.namespace,
                _known(name),
                request.data,
                content_type=content_type,
                subresource=request.subresource,
                dry_run=_dry_run(request),
            ),
        )

    async def _serve_apply(self, request: kmock.Request) -> kmock.Response:
        """Server-side apply, approximated: create when missing, else merge (no field ownership)."""
        resource, name = _known(request.resource), _known(request.name)
        try:
            body = yaml.safe_load(request.text) or {}
            info = self._info(resource)
            exists = self._current(self._key(resource, info, request.namespace, name)) is not None
        except ApiError as exc:
            return kmock.Response(status=exc.code, payload=exc.status())
        except yaml.YAMLError as exc:
            return kmock.Response(status=400, payload=ApiError(400, "BadRequest", str(exc)).status())
        if not exists and request.subresource is None:
            return _respond(
                201, lambda: self.create_object(resource, request.namespace, body, dry_run=_dry_run(request))
            )
        return _respond(
            200,
            lambda: self.patch_object(
                resource, request.namespace, name, body, subresource=request.subresource, dry_run=_dry_run(request)
            ),
        )

    async def _serve_replace(self, request: kmock.Request) -> kmock.Response:
        if request.resource is None or request.name is None:
            not_allowed = ApiError(405, "MethodNotAllowed", "PUT needs an object URL")
            return kmock.Response(status=not_allowed.code, payload=not_allowed.status())
        resource, name = request.resource, request.name
        return _respond(
            200,
            lambda: self.replace_object(
                resource,
                request.namespace,
                name,
                request.data,
                subresource=request.subresource,
                dry_run=_dry_run(request),
            ),
        )

    async def _serve_delete(self, request: kmock.Request) -> kmock.Response:
        options = request.data if isinstance(request.data, Mapping) else {}
        policy = options.get("propagationPolicy") or request.params.get("propagationPolicy")
        return _respond(
            200,
            lambda: self.delete_object(
                _known(request.resource),
                request.namespace,
                _known(request.name),
                preconditions=options.get("preconditions"),
                orphan=policy == "Orphan",
                dry_run=_dry_run(request),
            ),
        )

    async def _serve_delete_collection(self, request: kmock.Request) -> kmock.Response:
        def delete_all() -> dict[str, Any]:
            info = self._info(request.resource)
            resource = _known(request.resource)
            labels, fields = _selectors(request)
            deleted = [
                self.delete_object(resource, _meta(obj).get("namespace"), _meta(obj)["name"], dry_run=_dry_run(request))
                for obj in self.list_objects(resource, request.namespace, labels=labels, fields=fields)
            ]
            return {"apiVersion": _api_version(resource), "kind": f"{info.kind}List", "metadata": {}, "items": deleted}

        return _respond(200, delete_all)

    def _serve_watch(self, request: kmock.Request) -> kmock.Response:  # type: ignore[override]
        try:
            self._info(request.resource)
            labels, fields = _selectors(request)
            timeout = float(request.params.get("timeoutSeconds") or 0) or None
            since_text = request.params.get("resourceVersion") or "0"
            since = int(since_text) if since_text != "0" else None
        except ApiError as exc:
            return kmock.Response(status=exc.code, payload=exc.status())
        except ValueError as exc:
            return kmock.Response(status=400, payload=ApiError(400, "BadRequest", str(exc)).status())

        def selected(obj: Mapping[str, Any]) -> bool:
            meta = _meta(obj)
            return (
                (request.namespace is None or meta.get("namespace") == request.namespace)
                and (request.name is None or meta.get("name") == request.name)
                and _selected(obj, labels=labels, fields=fields)
            )

        stream = self._watch_events(
            _known(request.resource), request.namespace, selected, since=since, lifetime=timeout
        )
        return kmock.Response(status=200, headers={"Content-Type": "application/json"}, payload=stream)

    async def _watch_events(
        self,
        resource: kmock.resource,
        namespace: str | None,
        selected: Callable[[Mapping[str, Any]], bool],
        *,
        since: int | None,
        lifetime: float | None,
    ) -> AsyncIterator[Any]:
        yield b""  # start the response now: kmock sends the headers with the first chunk
        loop = asyncio.get_running_loop()
        deadline = None if lifetime is None else loop.time() + lifetime
        if since is None:  # no resourceVersion: the current state as ADDED events, then the changes
            last = self._revision
            for obj in [obj for obj in self.list_objects(resource, namespace) if selected(obj)]:
                yield {"type": "ADDED", "object": obj}
        elif since < self._forgotten_revision:
            expired = ApiError(410, "Expired", f"too old resource version: {since} ({self._forgotten_revision})")
            yield {"type": "ERROR", "object": expired.status()}
            return
        else:
            last = since
        while not self._closing:
            fresh = self._events_since(last)
            if fresh:
                last = fresh[-1].revision
                for event in fresh:
                    if event.resource == resource and (translated := _translate(event, selected)) is not None:
                        yield translated
                continue
            changed = self._changed  # taken after the last check with no await in between: no write is missed
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return

    def _events_since(self, revision: int) -> list[WatchEvent]:
        fresh: list[WatchEvent] = []
        for event in reversed(self._events):  # newest first: stop at the first one already seen
            if event.revision <= revision:
                break
            fresh.append(event)
        fresh.reverse()
        return fresh


def _translate(event: WatchEvent, selected: Callable[[Mapping[str, Any]], bool]) -> dict[str, Any] | None:
    """A write as this watcher sees it: objects entering or leaving its selector are ADDED or DELETED."""
    now_selected = selected(event.obj)
    before_selected = event.old is not None and selected(event.old)
    if event.type == "MODIFIED" and now_selected != before_selected:
        return {"type": "ADDED" if now_selected else "DELETED", "object": event.obj}
    if now_selected:
        return {"type": event.type, "object": event.obj}
    return None


def _respond(status: int, verb: Callable[[], dict[str, Any]]) -> kmock.Response:
    """Every answer carries its status explicitly: kmock keeps the last one on the reaction otherwise."""
    try:
        return kmock.Response(status=status, payload=verb())
    except ApiError as exc:
        return kmock.Response(status=exc.code, payload=exc.status())


def _selectors(request: kmock.Request) -> tuple[LabelSelector, FieldSelector]:
    try:
        return (
            parse_label_selector(request.params.get("labelSelector")),
            parse_field_selector(request.params.get("fieldSelector")),
        )
    except SelectorError as exc:
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {exc}") from exc


def _selected(obj: Mapping[str, Any], *, labels: LabelSelector | None, fields: FieldSelector | None) -> bool:
    return (labels is None or labels.matches(_meta(obj).get("labels"))) and (fields is None or fields.matches(obj))


def _check_subresource(info: kmock.ResourceInfo, subresource: str | None) -> None:
    if subresource is not None and (subresource != "status" or "status" not in info.subresources):
        raise ApiError(404, "NotFound", f"the server could not find the requested resource (subresource {subresource})")


def _check_resource_version(key: ObjectKey, old: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """Optimistic concurrency: a write naming a resourceVersion applies only to that version."""
    wanted = _meta(body).get("resourceVersion")
    if wanted and wanted != _meta(old).get("resourceVersion"):
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {_plural_group(key[0])} "{key[2]}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            details=_details(key),
        )


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("metadata", {}), Mapping):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object with an object in metadata")
    obj = copy.deepcopy(dict(body))
    obj["metadata"] = dict(obj.get("metadata") or {})
    return obj


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _known(value: Any) -> Any:
    """kmock routes verbs by URL shape, so the parts the shape implies are present; say so to mypy."""
    assert value is not None
    return value


def _dry_run(request: kmock.Request) -> bool:
    return request.params.get("dryRun") == "All"


def _api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def _plural_group(resource: kmock.resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def _details(key: ObjectKey) -> dict[str, Any]:
    return {"name": key[2], "group": key[0].group, "kind": key[0].plural}

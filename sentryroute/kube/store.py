"""`ObjectStore`: the state of an emulated cluster and the API server's rules for changing it.

Every verb is a synchronous method meant for one thread (the event loop's): nothing awaits inside a write, so
no lock is needed and a watcher never sees half a write. The rules, as kube-apiserver applies them:

- `metadata.uid`/`creationTimestamp`/`resourceVersion`/`generation`; one cluster-wide revision counter bumped
  on every write; `generation` bumps only when something other than metadata and status changes; a write
  that changes nothing is a no-op (no new revision, no watch event), so an operator patching the same status
  twice does not wake itself up;
- `metadata.namespace` from the URL, `generateName`, 409 on duplicates, 404 for missing objects and for
  resources nobody declared (create the CRD first, as in a real cluster);
- merge patch (RFC 7386), JSON patch (RFC 6902; a failed `test` is 422), strategic merge patch for built-in
  kinds (strategic.py; 415 for custom resources); replace; optimistic concurrency (409 on a stale
  resourceVersion); dry run; ConfigMap and Secret rules (builtin_kinds.py);
- the status subresource split: main-resource writes keep the stored status, `/status` writes change only
  the status; a create never sets status (Namespaces start Active, Pods Pending);
- deletion with finalizers (`deletionTimestamp`; the object goes once they are empty; no new finalizers on a
  deleting object), background garbage collection through `ownerReferences`, deleting a namespace deletes
  its objects;
- a CustomResourceDefinition serves its resource once created (and is marked Established), its custom
  resources are pruned, defaulted and validated (not CEL) by its schema, and deleting it removes them;
- an event log of every write, from which watches resume at a resourceVersion (older ones: 410 Gone).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kmock

from sentryroute.kube.builtin_kinds import normalize_and_check
from sentryroute.kube.crds import CRD_RESOURCE, established_status, served_resources, served_versions
from sentryroute.kube.objects import (
    ApiError,
    api_version_of,
    apply_json_patch,
    check_name,
    merge_patch,
    meta_of,
    now_timestamp,
    object_body,
    spec_view,
)
from sentryroute.kube.schemas import prune_and_default, unknown_fields
from sentryroute.kube.strategic import strategic_merge_patch
from sentryroute.kube.validation import validation_errors
from sentryroute.selectors import FieldSelector, LabelSelector

__all__ = ["NAMESPACES", "ObjectKey", "ObjectStore", "WatchEvent", "check_subresource", "selects"]

ObjectKey = tuple[kmock.resource, str | None, str]

NAMESPACES = kmock.resource("", "v1", "namespaces")
PODS = kmock.resource("", "v1", "pods")
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
_STRATEGIC_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class WatchEvent:
    """One committed write, kept in the event log that watches replay from a resourceVersion."""

    revision: int
    resource: kmock.resource
    type: str  # ADDED, MODIFIED or DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


class ObjectStore:
    """Objects and resources live in kmock's containers, so kmock's inspection (`objects[...]`) keeps working."""

    def __init__(
        self,
        *,
        objects: kmock.ObjectsArray,
        resources: kmock.ResourcesArray,
        history_limit: int = 20,
        events_kept: int = 10_000,
    ) -> None:
        self.objects = objects
        self.resources = resources
        self.history_limit = history_limit
        self.events_kept = events_kept
        self.revision = 0
        self.events: collections.deque[WatchEvent] = collections.deque()
        self.forgotten_revision = 0  # the newest revision dropped from the log: watches from before it get 410
        self.changed = asyncio.Event()  # set (and replaced) on every write: what watchers wait for
        self.closing = False
        self.crd_versions: dict[kmock.resource, dict[str, Any]] = {}  # each served CRD version: schema, columns

    def get_object(self, resource: kmock.resource, namespace: str | None, name: str) -> dict[str, Any]:
        info = self.info(resource)
        key = self._key(resource, info, namespace, name)
        return self._existing(key)

    def find_object(self, resource: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (the resource must exist)."""
        return self._current(self._key(resource, self.info(resource), namespace, name))

    def list_objects(
        self,
        resource: kmock.resource,
        namespace: str | None = None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
    ) -> list[dict[str, Any]]:
        """Current objects, all namespaces when `namespace` is None, ordered by namespace and name like etcd."""
        self.info(resource)
        found = [
            record.raw
            for (res, ns, _), record in self.objects.items()
            if res == resource and not record.deleted and (namespace is None or ns == namespace)
        ]
        found = [obj for obj in found if selects(obj, labels=labels, fields=fields)]
        return sorted(found, key=lambda obj: (meta_of(obj).get("namespace") or "", meta_of(obj).get("name") or ""))

    def create_object(
        self,
        resource: kmock.resource,
        namespace: str | None,
        body: Any,
        *,
        strict_fields: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """POST. `strict_fields`: reject fields a custom resource's schema does not declare (else prune them)."""
        info = self.info(resource)
        obj = object_body(body)
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
        obj.setdefault("apiVersion", api_version_of(resource))
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
        obj = self._shaped(resource, obj, strict_fields=strict_fields)
        normalize_and_check(resource, obj)
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
        strict_fields: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH: a JSON patch (a list body), a strategic merge patch (built-in kinds) or a merge patch."""
        info = self.info(resource)
        key = self._key(resource, info, namespace, name)
        old = self._existing(key)
        check_subresource(info, subresource)
        if isinstance(patch, list):
            candidate = apply_json_patch(old, patch)
        elif content_type == _JSON_PATCH:
            raise ApiError(400, "BadRequest", "the body of a JSON patch must be a JSON array of operations")
        elif isinstance(patch, Mapping) and content_type == _STRATEGIC_PATCH:
            if resource in self.crd_versions:
                message = "strategic merge patch is not supported for custom resources: use a merge patch"
                raise ApiError(415, "UnsupportedMediaType", message)
            _check_resource_version(key, old, patch)
            candidate = strategic_merge_patch(old, patch)
        elif isinstance(patch, Mapping):
            _check_resource_version(key, old, patch)
            candidate = merge_patch(old, patch)
        else:
            raise ApiError(400, "BadRequest", "the body of a merge patch must be a JSON object")
        return self._update(
            key, info, old, candidate, subresource=subresource, strict_fields=strict_fields, dry_run=dry_run
        )

    def replace_object(
        self,
        resource: kmock.resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        strict_fields: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT: the whole object (or, through `/status`, its whole status)."""
        info = self.info(resource)
        key = self._key(resource, info, namespace, name)
        old = self._existing(key)
        check_subresource(info, subresource)
        candidate = object_body(body)
        if candidate["metadata"].get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if candidate["metadata"].get("namespace") not in (None, "", namespace):
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace on the URL")
        _check_resource_version(key, old, candidate)
        return self._update(
            key, info, old, candidate, subresource=subresource, strict_fields=strict_fields, dry_run=dry_run
        )

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
        info = self.info(resource)
        key = self._key(resource, info, namespace, name)
        old = self._existing(key)
        for field in ("uid", "resourceVersion"):
            expected = (preconditions or {}).get(field)
            if expected is not None and meta_of(old).get(field) != expected:
                raise ApiError(
                    409, "Conflict", f"Precondition failed: {field} in precondition: {expected}", details=_details(key)
                )
        if dry_run:
            return old
        if not meta_of(old).get("finalizers"):
            return self._remove(key, old, orphan=orphan)
        if meta_of(old).get("deletionTimestamp"):
            return old
        marked = copy.deepcopy(old)
        marked["metadata"].update(deletionTimestamp=now_timestamp(), deletionGracePeriodSeconds=0)
        return self._commit(key, "MODIFIED", marked, old)

    def apply_document(self, doc: Mapping[str, Any], *, namespace: str = "default") -> dict[str, Any]:
        """Create or replace one manifest, like `kubectl apply` of a full object; its status goes through `/status`.

        `namespace` is used when a namespaced manifest names none (kubectl's default namespace).
        """
        resource, info = self.resource_for(str(doc.get("apiVersion")), str(doc.get("kind")))
        name = str(meta_of(doc).get("name"))
        ns = (meta_of(doc).get("namespace") or namespace) if info.namespaced else None
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

    def info(self, resource: kmock.resource | None) -> kmock.ResourceInfo:
        """The declared resource's discovery entry; 404 for resources nobody declared (no CRD, no built-in)."""
        if resource is None or resource.plural is None or resource not in self.resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return self.resources[resource]

    def schema(self, resource: kmock.resource) -> dict[str, Any] | None:
        """A custom resource's openAPIV3Schema (None: a built-in kind, whose schema the emulator does not know)."""
        return self.crd_versions.get(resource, {}).get("schema", {}).get("openAPIV3Schema")

    def printer_columns(self, resource: kmock.resource) -> list[dict[str, Any]] | None:
        """A custom resource's `additionalPrinterColumns` (None: none declared, or a built-in kind)."""
        return self.crd_versions.get(resource, {}).get("additionalPrinterColumns")

    def events_since(self, revision: int) -> list[WatchEvent]:
        """The logged writes after `revision`, oldest first."""
        fresh: list[WatchEvent] = []
        for event in reversed(self.events):  # newest first: stop at the first one already seen
            if event.revision <= revision:
                break
            fresh.append(event)
        fresh.reverse()
        return fresh

    def stop_watches(self) -> None:
        """End every open watch stream (on shutdown: a server waits for in-flight responses)."""
        self.closing = True
        self.changed.set()

    # ----------------------------------------------------------------------------------------------------------
    # Internals: one place (_commit) assigns revisions, stores versions and logs events.

    def _commit(
        self, key: ObjectKey, event_type: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        if key not in self.objects:
            self.objects[key] = obj
        else:
            record = self.objects[key]
            record.history.append(obj)
            if event_type == "DELETED":
                record.delete()
            if len(record.history) > self.history_limit:
                del record.history[: len(record.history) - self.history_limit]
        if len(self.events) >= self.events_kept:
            self.forgotten_revision = self.events.popleft().revision
        self.events.append(WatchEvent(self.revision, key[0], event_type, obj, old))
        self.changed.set()
        self.changed = asyncio.Event()
        return obj

    def _update(
        self,
        key: ObjectKey,
        info: kmock.ResourceInfo,
        old: dict[str, Any],
        candidate: Mapping[str, Any],
        *,
        subresource: str | None,
        strict_fields: bool = False,
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
        meta, old_meta = new.setdefault("metadata", {}), meta_of(old)
        for field in _SERVER_OWNED_METADATA:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        new = self._shaped(key[0], new, strict_fields=strict_fields)
        normalize_and_check(key[0], new)
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
            self._collect_garbage(owner_uid=meta_of(old).get("uid"), namespace=key[1])
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
            self.crd_versions.update(served_versions(new) if new is not None else {})
            if old is None and new is not None:
                info = self.info(CRD_RESOURCE)
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
        self.crd_versions.pop(resource, None)

    def _collect_garbage(self, *, owner_uid: str | None, namespace: str | None) -> None:
        """Background deletion of dependents whose `ownerReferences` name the removed owner."""
        if not owner_uid:
            return
        for (res, ns, name), record in list(self.objects.items()):
            if record.deleted or (namespace is not None and ns != namespace):
                continue
            owners = meta_of(record.raw).get("ownerReferences") or ()
            if any(isinstance(owner, Mapping) and owner.get("uid") == owner_uid for owner in owners):
                self.delete_object(res, ns, name)

    def _shaped(self, resource: kmock.resource, obj: dict[str, Any], *, strict_fields: bool) -> dict[str, Any]:
        """A custom resource pruned, defaulted and validated by its CRD's schema; other objects as they are."""
        schema = self.schema(resource)
        if not schema:
            return obj
        unknown = unknown_fields(schema, {key: value for key, value in obj.items() if key != "metadata"})
        if strict_fields and unknown:
            fields = ", ".join(f'unknown field "{field}"' for field in unknown)
            raise ApiError(
                400, "BadRequest", f"{obj.get('kind')} in version {resource.version!r}: strict decoding error: {fields}"
            )
        shaped: dict[str, Any] = prune_and_default(schema, obj)
        shaped.update({key: obj[key] for key in ("apiVersion", "kind", "metadata") if key in obj})
        errors = validation_errors(schema, {key: value for key, value in shaped.items() if key != "metadata"})
        if errors:
            listed = errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"
            name = meta_of(obj).get("name")
            raise ApiError(422, "Invalid", f'{obj.get("kind")}.{resource.group} "{name}" is invalid: {listed}')
        return shaped

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


def selects(obj: Mapping[str, Any], *, labels: LabelSelector | None, fields: FieldSelector | None) -> bool:
    """Whether both selectors (None: no constraint) select `obj`."""
    return (labels is None or labels.matches(meta_of(obj).get("labels"))) and (fields is None or fields.matches(obj))


def check_subresource(info: kmock.ResourceInfo, subresource: str | None) -> None:
    if subresource is not None and (subresource != "status" or "status" not in info.subresources):
        raise ApiError(404, "NotFound", f"the server could not find the requested resource (subresource {subresource})")


def _check_resource_version(key: ObjectKey, old: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """Optimistic concurrency: a write naming a resourceVersion applies only to that version."""
    wanted = meta_of(body).get("resourceVersion")
    if wanted and wanted != meta_of(old).get("resourceVersion"):
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {_plural_group(key[0])} "{key[2]}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            details=_details(key),
        )


def _plural_group(resource: kmock.resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def _details(key: ObjectKey) -> dict[str, Any]:
    return {"name": key[2], "group": key[0].group, "kind": key[0].plural}

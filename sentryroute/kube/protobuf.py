"""Reading the Kubernetes protobuf bodies that kubectl's generators send, for the few kinds they create.

`kubectl create namespace|configmap|secret|serviceaccount` post their object as
`application/vnd.kubernetes.protobuf` (client-go's typed clients prefer it for built-in kinds) and do not fall
back to JSON. The envelope is the magic `k8s\\0` followed by a `runtime.Unknown` message (typeMeta, raw); `raw`
is the object's own message. Field numbers are those of `k8s.io/api/core/v1/generated.proto` and
`k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`. Only the fields those generators set are read; any other
kind is refused with a message that says to use `kubectl apply -f` (manifests are sent as JSON).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

__all__ = ["ProtobufError", "decode_object"]

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """The body is not a protobuf object this emulator can read; the message says what to do instead."""


Fields = dict[int, list[bytes | int]]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Fields:
    """field number → values (ints for varints, bytes for length-delimited); fixed-width fields are skipped."""
    fields: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
            fields.setdefault(number, []).append(value)
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated protobuf field")
            fields.setdefault(number, []).append(data[pos : pos + length])
            pos += length
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise ProtobufError(f"unsupported protobuf wire type {wire_type}")
    return fields


def _bytes(fields: Fields, number: int) -> bytes | None:
    values = [v for v in fields.get(number, ()) if isinstance(v, bytes)]
    return values[-1] if values else None


def _text(fields: Fields, number: int) -> str | None:
    value = _bytes(fields, number)
    return None if value is None else value.decode("utf-8")


def _texts(fields: Fields, number: int) -> list[str]:
    return [v.decode("utf-8") for v in fields.get(number, ()) if isinstance(v, bytes)]


def _flag(fields: Fields, number: int) -> bool | None:
    values = [v for v in fields.get(number, ()) if isinstance(v, int)]
    return bool(values[-1]) if values else None


def _map(fields: Fields, number: int, *, binary: bool = False) -> dict[str, Any]:
    """A `map<string, string|bytes>` field (entries with key 1, value 2); bytes become base64, as in JSON."""
    result: dict[str, Any] = {}
    for entry in fields.get(number, ()):
        if not isinstance(entry, bytes):
            continue
        pair = _fields(entry)
        key, value = _text(pair, 1) or "", _bytes(pair, 2) or b""
        result[key] = base64.b64encode(value).decode("ascii") if binary else value.decode("utf-8")
    return result


def _object_meta(data: bytes | None) -> dict[str, Any]:
    fields = _fields(data or b"")
    meta: dict[str, Any] = {}
    for name, number in (("name", 1), ("generateName", 2), ("namespace", 3)):
        if value := _text(fields, number):  # proto2 sends unset strings as "": JSON would omit them
            meta[name] = value
    for name, number in (("labels", 11), ("annotations", 12)):
        if entries := _map(fields, number):
            meta[name] = entries
    if finalizers := _texts(fields, 14):
        meta["finalizers"] = finalizers
    return meta


def _namespace(fields: Fields) -> dict[str, Any]:
    spec = _fields(_bytes(fields, 2) or b"")
    body: dict[str, Any] = {"metadata": _object_meta(_bytes(fields, 1))}
    if finalizers := _texts(spec, 1):
        body["spec"] = {"finalizers": finalizers}
    return body


def _configmap(fields: Fields) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": _object_meta(_bytes(fields, 1))}
    if data := _map(fields, 2):
        body["data"] = data
    if binary := _map(fields, 3, binary=True):
        body["binaryData"] = binary
    if (immutable := _flag(fields, 4)) is not None:
        body["immutable"] = immutable
    return body


def _secret(fields: Fields) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": _object_meta(_bytes(fields, 1))}
    if data := _map(fields, 2, binary=True):
        body["data"] = data
    if (kind := _text(fields, 3)) is not None:
        body["type"] = kind
    if string_data := _map(fields, 4):
        body["stringData"] = string_data
    if (immutable := _flag(fields, 5)) is not None:
        body["immutable"] = immutable
    return body


def _service_account(fields: Fields) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": _object_meta(_bytes(fields, 1))}
    if (automount := _flag(fields, 4)) is not None:
        body["automountServiceAccountToken"] = automount
    return body


_KINDS: dict[tuple[str, str], Callable[[Fields], dict[str, Any]]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _service_account,
}


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of a supported kind; ProtobufError otherwise."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s magic)")
    unknown = _fields(body[len(MAGIC) :])
    type_meta = _fields(_bytes(unknown, 1) or b"")
    api_version, kind = _text(type_meta, 1) or "", _text(type_meta, 2) or ""
    decode = _KINDS.get((api_version, kind))
    if decode is None:
        supported = ", ".join(k for _v, k in _KINDS)
        raise ProtobufError(
            f"the emulator reads protobuf bodies only for {supported}, not {api_version}/{kind}: "
            "write the object as YAML and use `kubectl apply -f` (sent as JSON)"
        )
    return {"apiVersion": api_version, "kind": kind, **decode(_fields(_bytes(unknown, 2) or b""))}

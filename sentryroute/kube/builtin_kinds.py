"""What the API server does to a few built-in kinds on every write: Secrets' `stringData` becomes base64
`data`, and ConfigMap and Secret keys and sizes are validated (at most 1 MiB of data).

They matter here: the operator reads Sentry tokens from Secrets (as base64 `data`, whatever the writer used)
and guards the size of the routes table it writes into a ConfigMap (SPEC §3); a real API server rejects a
ConfigMap over 1 MiB with 422, and so does the emulator.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import kmock

from sentryroute.kube.objects import ApiError

__all__ = ["MAX_DATA_BYTES", "normalize_and_check"]

MAX_DATA_BYTES = 1024 * 1024  # corev1.MaxSecretSize, also the ConfigMap limit
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
SECRETS = kmock.resource("", "v1", "secrets")
_KEY_RE = re.compile(r"[-._a-zA-Z0-9]{1,253}")


def normalize_and_check(resource: kmock.resource, obj: dict[str, Any]) -> None:
    """Fold a Secret's `stringData` into `data` (in place); 422 for bad keys or over 1 MiB of data."""
    if resource == SECRETS and obj.get("stringData"):
        encoded = {key: base64.b64encode(str(value).encode()).decode() for key, value in obj["stringData"].items()}
        obj["data"] = dict(obj.get("data") or {}, **encoded)
    if resource == SECRETS:
        obj.pop("stringData", None)
    if resource not in (CONFIGMAPS, SECRETS):
        return
    kind = "ConfigMap" if resource == CONFIGMAPS else "Secret"
    name = (obj.get("metadata") or {}).get("name")
    size = 0
    for field in ("data", "binaryData"):
        for key, value in (obj.get(field) or {}).items():
            if not _KEY_RE.fullmatch(key) or key in (".", ".."):
                raise _invalid(
                    kind, name, f"{field}[{key}]: Invalid value: a config key must consist of [-._a-zA-Z0-9]"
                )
            base64_encoded = field == "binaryData" or resource == SECRETS
            size += _decoded_size(value) if base64_encoded else len(str(value).encode())
    if size > MAX_DATA_BYTES:
        raise _invalid(kind, name, f"[]: Too long: may not be more than {MAX_DATA_BYTES} bytes")


def _decoded_size(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        raise ApiError(400, "BadRequest", "illegal base64 data in a Secret or in binaryData") from None


def _invalid(kind: str, name: Any, cause: str) -> ApiError:
    details = {"name": name, "kind": kind.lower()}
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {cause}', details=details)

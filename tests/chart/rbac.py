"""A small model of Kubernetes RBAC authorisation, to check the chart's Roles against real API requests.

It follows the API server's rules: the verb comes from the HTTP method (GET on a collection is `list`, with
`watch=true` it is `watch`), a list or watch that selects one object with `fieldSelector=metadata.name=X` is
authorised as a request for the name X (k8s.io/apiserver pkg/endpoints/request/requestinfo.go), `resourceNames`
never authorises `create`, and a Role only applies inside its own namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Access:
    """One API request as RBAC sees it."""

    verb: str
    group: str
    resource: str  # with `/subresource` when there is one
    namespace: str | None
    name: str | None

    def __str__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        where = f" in {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {self.group or 'core'}/{self.resource}{named}{where}"


def access_of(method: str, path: str, params: Mapping[str, str]) -> Access | None:
    """The RBAC view of a request; None for non-resource URLs (discovery, /version), which every client may read."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # discovery of a group version
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource += "/" + rest[2]
    if method == "GET":
        watching = params.get("watch", "").lower() in ("1", "true")
        verb = "watch" if watching else ("get" if name else "list")
        selector = params.get("fieldSelector", "")
        if name is None and selector.startswith("metadata.name=") and "," not in selector:
            name = selector.removeprefix("metadata.name=")
    else:
        verb = _VERBS[method]
        if verb == "delete" and name is None:
            verb = "deletecollection"
    return Access(verb=verb, group=group, resource=resource, namespace=namespace, name=name)


def _rule_allows(rule: Mapping[str, Any], access: Access) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    if not (has("apiGroups", access.group) and has("resources", access.resource) and has("verbs", access.verb)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (access.verb != "create" and access.name in names)


def granted_rules(
    manifests: Sequence[Mapping[str, Any]], service_account: str, namespace: str
) -> list[tuple[str | None, Mapping[str, Any]]]:
    """(namespace the rule is limited to, rule) for everything bound to the ServiceAccount."""
    roles = {(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]): m for m in manifests}
    granted: list[tuple[str | None, Mapping[str, Any]]] = []
    for binding in manifests:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == service_account and s["namespace"] == namespace
            for s in subjects
        ):
            continue
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        role = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        granted += [(scope, rule) for rule in role["rules"]]
    return granted


def denied(accesses: Iterable[Access], rules: Sequence[tuple[str | None, Mapping[str, Any]]]) -> list[Access]:
    """The accesses no rule allows."""
    return [
        access
        for access in accesses
        if not any((scope is None or scope == access.namespace) and _rule_allows(rule, access) for scope, rule in rules)
    ]

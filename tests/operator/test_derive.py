"""Pure derivation rules (SPEC §2): each link of both chains, placeholders, selectors, owners, env parsing."""

from __future__ import annotations

from typing import Any

import pytest
from sentryroute_operator.derive import (
    OwnerRef,
    derive_service_names,
    pod_facts,
    selector_matches,
    service_name_from_resource_attributes,
    workload_name,
)
from sentryroute_operator.derive.route_values import pod_service_names, project_slug


def pod(
    *,
    name: str = "web-7d4b9-x2x",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    envs: list[list[dict[str, Any]]] | None = None,
    init_envs: list[dict[str, Any]] | None = None,
    owner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "shop",
        "labels": labels or {},
        "annotations": annotations or {},
    }
    if owner:
        metadata["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True, "apiVersion": "x"}]
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "env": env} for i, env in enumerate(envs or [[]])]}
    if init_envs is not None:
        spec["initContainers"] = [{"name": "init", "env": init_envs}]
    return {"metadata": metadata, "spec": spec}


def env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


EVERY_SOURCE: dict[str, Any] = {
    "envs": [[env("OTEL_SERVICE_NAME", "from-env"), env("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]],
    "labels": {"service.name": "from-label", "app.kubernetes.io/instance": "inst", "app.kubernetes.io/name": "nm"},
    "annotations": {"resource.opentelemetry.io/service.name": "from-annotation"},
}


@pytest.mark.parametrize(
    ("remove", "mode", "expected"),
    [
        ([], "explicit", ["from-env"]),
        (["env"], "explicit", ["from-attrs"]),
        (["env", "attrs"], "explicit", ["from-label"]),
        (["env", "attrs", "label"], "explicit", ["from-annotation"]),
        (["env", "attrs", "label", "annotation"], "explicit", []),
        (["env", "attrs", "label", "annotation"], "inferred", ["inst"]),
        (["env", "attrs", "label", "annotation", "instance"], "inferred", ["nm"]),
        (["env", "attrs", "label", "annotation", "instance", "name"], "inferred", ["web"]),
    ],
)
def test_each_link_of_the_chains(remove: list[str], mode: str, expected: list[str]) -> None:
    containers = [
        e
        for e in EVERY_SOURCE["envs"][0]
        if not (
            ("env" in remove and e["name"] == "OTEL_SERVICE_NAME")
            or ("attrs" in remove and e["name"] == "OTEL_RESOURCE_ATTRIBUTES")
        )
    ]
    labels = dict(EVERY_SOURCE["labels"])
    for link, key in [
        ("label", "service.name"),
        ("instance", "app.kubernetes.io/instance"),
        ("name", "app.kubernetes.io/name"),
    ]:
        if link in remove:
            labels.pop(key)
    annotations = {} if "annotation" in remove else dict(EVERY_SOURCE["annotations"])
    facts = pod_facts(pod(labels=labels, annotations=annotations, envs=[containers], owner=("ReplicaSet", "web-7d4b9")))
    assert derive_service_names(facts, mode=mode, workload="web") == expected  # type: ignore[arg-type]


def test_pod_name_is_the_last_link_for_a_bare_pod() -> None:
    facts = pod_facts(pod(name="lonely"))
    assert derive_service_names(facts, mode="inferred", workload=None) == ["lonely"]
    assert derive_service_names(facts, mode="explicit", workload=None) == []


def test_multi_container_init_ignored_value_from_skipped_placeholders_skipped() -> None:
    facts = pod_facts(
        pod(
            envs=[
                [env("OTEL_SERVICE_NAME", "api")],
                [{"name": "OTEL_SERVICE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                [
                    env("OTEL_SERVICE_NAME", "unknown_service:java"),
                    env("OTEL_RESOURCE_ATTRIBUTES", "service.name=worker"),
                ],
                [env("OTEL_SERVICE_NAME", "api")],
            ],
            init_envs=[env("OTEL_SERVICE_NAME", "migrations")],
            labels={"service.name": "unknown_service"},
        )
    )
    # container 2: valueFrom skipped, label is a placeholder → nothing; container 3: placeholder skipped.
    assert derive_service_names(facts, mode="explicit") == ["api", "worker"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("service.name=checkout", "checkout"),
        ("deployment.environment=prod, service.name = checkout ,team=a", "checkout"),
        ("service.name=my%20service%2Cv2", "my service,v2"),
        ("service%2Ename=encoded-key", "encoded-key"),
        ("team=a", None),
        ("service.name=a,service.name=b", "b"),
        ("service.name=ok,broken", None),  # one malformed pair discards the whole variable
        ("service.name=bad%zzpercent", None),
        ("service.name=%ff", None),  # not UTF-8 after decoding
        ("", None),
    ],
)
def test_resource_attributes_parsing(raw: str, expected: str | None) -> None:
    assert service_name_from_resource_attributes(raw) == expected


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "b"}, True),
        ({"matchLabels": {"tier": "web"}}, {"tier": "web"}, True),
        ({"matchLabels": {"tier": "web"}}, {"tier": "db"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}, {"tier": "api"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, {}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Typo"}]}, {"tier": "web"}, False),
    ],
)
def test_selector(selector: Any, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


PARENTS = {
    ("ReplicaSet", "web-7d4b9"): OwnerRef("Deployment", "web"),
    ("Job", "report-2901"): OwnerRef("CronJob", "report"),
}


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (OwnerRef("ReplicaSet", "web-7d4b9"), "web"),
        (OwnerRef("ReplicaSet", "bare-rs"), "bare-rs"),
        (OwnerRef("Job", "report-2901"), "report"),
        (OwnerRef("Job", "one-off"), "one-off"),
        (OwnerRef("StatefulSet", "db"), "db"),
        (OwnerRef("DaemonSet", "agent"), "agent"),
        (OwnerRef("SomethingCustom", "x"), None),
        (None, None),
    ],
)
def test_workload_name(owner: OwnerRef | None, expected: str | None) -> None:
    assert workload_name(owner, parent_of=lambda o: PARENTS.get((o.kind, o.name))) == expected


def test_route_values_are_sorted_distinct_and_selected() -> None:
    pods = [
        pod_facts(pod(name="b", labels={"service.name": "zeta", "tier": "web"})),
        pod_facts(pod(name="a", labels={"service.name": "alpha", "tier": "web"})),
        pod_facts(pod(name="c", labels={"service.name": "alpha", "tier": "web"})),
        pod_facts(pod(name="d", labels={"service.name": "db", "tier": "db"})),
    ]
    names = pod_service_names(
        pods, mode="explicit", selector={"matchLabels": {"tier": "web"}}, parent_of=lambda o: None
    )
    assert names == ["alpha", "zeta"]


@pytest.mark.parametrize(
    ("template", "service", "expected"),
    [
        ("{service}", "checkout", "checkout"),
        ("{namespace}-{service}", "checkout", "shop-checkout"),
        ("{service.__class__}", "x", "service-__class__-fa3b57"),
    ],
)
def test_project_slug_template(template: str, service: str, expected: str) -> None:
    assert project_slug(template, service=service, namespace="shop") == expected


def test_a_name_longer_than_a_status_entry_allows_is_skipped() -> None:
    facts = pod_facts(
        pod(envs=[[env("OTEL_SERVICE_NAME", "x" * 1025), env("OTEL_RESOURCE_ATTRIBUTES", "service.name=ok")]])
    )
    assert derive_service_names(facts, mode="explicit") == ["ok"]

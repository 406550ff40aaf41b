"""Label and field selectors: the parser on its own, then through list calls of the official client."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from sentryroute.selectors import SelectorError, parse_field_selector, parse_label_selector
from tests.kube.helpers import CoreApi

LABELS = {"app": "shop", "tier": "web", "version": "3"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=shop", True),
        ("app==shop", True),
        ("app!=shop", False),
        ("app!=other", True),
        ("missing!=x", True),  # an absent key satisfies !=, as in Kubernetes
        ("tier in (web,db)", True),
        ("tier in (db)", False),
        ("tier notin (db, cache)", True),
        ("missing notin (x)", True),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("version>2", True),
        ("version<3", False),
        ("app=shop,tier in (web),!missing", True),
        ("app=shop,tier=db", False),
        ("example.com/team", False),
    ],
)
def test_label_selector_matches(selector: str, expected: bool):
    assert parse_label_selector(selector).matches(LABELS) is expected


@pytest.mark.parametrize("selector", ["app in (a", "app)", "=x", "app in a", "a b", "app=x y"])
def test_malformed_label_selectors_are_rejected(selector: str):
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


def test_field_selector():
    obj = {"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert parse_field_selector("metadata.name=a,metadata.namespace==ns").matches(obj)
    assert not parse_field_selector("status.phase!=Running").matches(obj)
    assert parse_field_selector("spec.nodeName=").matches(obj)  # absent fields compare as ""


def test_list_filters_by_selectors(core: CoreApi):
    for name, tier in [("a", "web"), ("b", "db"), ("c", None)]:
        labels = {"tier": tier} if tier else {}
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(**selectors: str) -> list[str]:
        return [cm.metadata.name for cm in core.list_namespaced_config_map("default", **selectors).items]

    assert names(label_selector="tier=web") == ["a"]
    assert names(label_selector="tier notin (web)") == ["b", "c"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(field_selector="metadata.name!=a") == ["b", "c"]
    listing = core.list_namespaced_config_map("default")
    assert (listing.kind, listing.api_version) == ("ConfigMapList", "v1")
    assert int(listing.metadata.resource_version) > 0
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map("default", label_selector="tier in (web")
    assert bad.value.status == 400


def test_list_pages_with_limit_and_continue(core: CoreApi):
    for name in "edcba":
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    first = core.list_namespaced_config_map("default", limit=2)
    assert [cm.metadata.name for cm in first.items] == ["a", "b"] and first.metadata.remaining_item_count == 3
    second = core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_config_map("default", limit=2, _continue=second.metadata._continue)
    assert [cm.metadata.name for cm in second.items + third.items] == ["c", "d", "e"]
    assert third.metadata._continue is None

"""Scoped matching (SPEC §3) and the namespace rewrite on the wire (SPEC §6.1), below the receivers."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sentryroute_forwarder.model import Destination, Signal
from sentryroute_forwarder.route.origin import ATTRIBUTE, UNKNOWN, Origin
from sentryroute_forwarder.route.rewrite import set_namespace
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.split import split_request
from sentryroute_forwarder.route.wire import records

from sentryroute.routes import MAX_REPORTED_VALUE, RoutesTable
from tests.forwarder.support import endpoint, resource_spans, traces_request

SERVICE, NS = "service.name", "k8s.namespace.name"


def table(**extra: object) -> RoutesTable:
    projects = ["bank-orders", "bank-ledger", "bank-catch-all", "platform", "cluster-catch-all"]
    return RoutesTable.model_validate(
        {
            "version": 1,
            "routes": [
                {"attribute": SERVICE, "value": "orders", "namespace": "bank", "project": "acme/bank-orders"},
                {"attribute": SERVICE, "value": "ledger", "namespace": "bank", "project": "acme/bank-ledger"},
                {"attribute": SERVICE, "value": "platform-svc", "project": "acme/platform"},
            ],
            "projects": {f"acme/{p}": endpoint(i + 1) for i, p in enumerate(projects)},
            "fallbacks": [
                {"attribute": SERVICE, "namespace": "bank", "project": "acme/bank-catch-all"},
                {"attribute": SERVICE, "project": "acme/cluster-catch-all"},
            ],
            "pending": [{"attribute": SERVICE, "value": "new-svc", "namespace": "bank"}],
            "refused": [{"attribute": SERVICE, "value": "bad-svc", "reason": "denied", "namespace": "bank"}],
            **extra,
        }
    ).with_revision()


def project(name: str) -> Destination:
    return Destination("project", project=f"acme/{name}")


def test_strict_namespaced_entries_match_only_their_own_namespace():
    router = Router(table(), strict=True)
    assert router.decide({SERVICE: "orders"}, "bank")[0] == project("bank-orders")
    assert router.decide({SERVICE: "orders"}, "shop")[0] == project("cluster-catch-all")
    assert router.decide({SERVICE: "ledger"}, None)[0] == project("cluster-catch-all")  # no namespace: cluster only
    assert router.decide({SERVICE: "platform-svc"}, "shop")[0] == project("platform")  # cluster-wide route
    assert router.decide({SERVICE: "platform-svc"}, None)[0] == project("platform")
    assert router.decide({SERVICE: "zzz"}, "bank")[0] == project("bank-catch-all")
    assert router.decide({SERVICE: "new-svc"}, "bank")[0] == Destination("hold", reason="pending")
    assert router.decide({SERVICE: "new-svc"}, "shop")[0] == project("cluster-catch-all")
    assert router.decide({SERVICE: "bad-svc"}, "bank")[0] == Destination("drop", reason="refused")
    assert router.decide({SERVICE: "bad-svc"}, None)[0] == project("cluster-catch-all")


def test_attribute_mode_keeps_the_trusting_rules():
    router = Router(table())
    assert router.decide({SERVICE: "orders"})[0] == project("bank-orders")  # no claim: any namespace's route
    assert router.decide({SERVICE: "orders", NS: "shop"})[0] == project("cluster-catch-all")
    assert router.decide({SERVICE: "new-svc"})[0] == Destination("hold", reason="pending")
    assert router.decide({SERVICE: "zzz"})[0] == project("cluster-catch-all")  # fallbacks need an exact namespace


def test_long_values_are_dropped_not_held_for_the_report_channel():
    router = Router(table(fallbacks=[], unrouted="hold"), strict=True)
    fits = "v" * MAX_REPORTED_VALUE
    assert router.decide({SERVICE: fits}, "shop")[0] == Destination("hold", reason="unrouted")
    assert router.decide({SERVICE: fits + "v"}, "shop")[0] == Destination("drop", reason="value_too_long")


def resource_namespaces(payload: bytes) -> list[list[str]]:
    request = ExportTraceServiceRequest.FromString(payload)
    return [[kv.value.string_value for kv in rs.resource.attributes if kv.key == NS] for rs in request.resource_spans]


def test_set_namespace_corrects_or_removes_the_claim_and_keeps_everything_else():
    original = traces_request(resource_spans("orders", namespace="bank", spans=3, scopes=2, tag="x"))
    body = original.SerializeToString()
    (record,) = records(body)
    corrected = ExportTraceServiceRequest.FromString(set_namespace(record, "shop"))
    expected = ExportTraceServiceRequest()
    expected.CopyFrom(original)
    for kv in expected.resource_spans[0].resource.attributes:
        if kv.key == NS:
            kv.value.string_value = "shop"
    attrs = lambda r: sorted((kv.key, kv.value.string_value) for kv in r.resource_spans[0].resource.attributes)  # noqa: E731
    assert attrs(corrected) == attrs(expected)
    assert corrected.resource_spans[0].scope_spans == original.resource_spans[0].scope_spans
    removed = ExportTraceServiceRequest.FromString(set_namespace(record, None))
    assert NS not in {kv.key for kv in removed.resource_spans[0].resource.attributes}
    assert removed.resource_spans[0].scope_spans == original.resource_spans[0].scope_spans


def test_split_routes_by_the_origin_and_rewrites_only_false_claims():
    body = traces_request(
        resource_spans("orders", namespace="bank", tag="a"),  # a lie from shop
        resource_spans("orders", tag="b"),  # no claim: left as sent
        resource_spans("orders", namespace="shop", tag="c"),  # the truth: left as sent
    ).SerializeToString()
    router = Router(table(), strict=True)
    result = split_request(Signal.TRACES, body, router, Origin.pod("shop"))
    assert result.rewrites == 1
    (part,) = result.parts
    assert part.destination == project("cluster-catch-all") and part.namespace == "shop"
    assert resource_namespaces(part.payload) == [["shop"], [], ["shop"]]

    unknown = split_request(Signal.TRACES, body, router, UNKNOWN)
    assert unknown.rewrites == 2 and resource_namespaces(unknown.parts[0].payload) == [[], [], []]

    relayed = split_request(Signal.TRACES, body, router, ATTRIBUTE)  # a trusted relay: each resource's claim
    assert relayed.rewrites == 0
    by_namespace = {p.namespace: p.destination for p in relayed.parts}
    assert by_namespace == {
        "bank": project("bank-orders"),
        None: project("cluster-catch-all"),
        "shop": project("cluster-catch-all"),
    }

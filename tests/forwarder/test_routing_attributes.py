"""`wirecheck.routing_attributes` (a walked Resource's routing attributes, read without protobuf) against upb.

Whatever it returns must equal `wire.resource_attributes` of the Resource as upb decodes it, compiled and
interpreted alike; where protobuf's merge rules would decide (several `resource` fields, a pair with two
values, a wanted key whose value is not a string, a group), it must return None so the caller decodes in full.
The cases are built by hand (shapes the generated classes never write) and at random from the OTLP schema.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans
from sentryroute_forwarder.route import wirecheck
from sentryroute_forwarder.route.wire import resource_attributes

from tests.forwarder import otlp_strategies
from tests.forwarder.support import field, varint

MODULES = {"installed": wirecheck, "interpreted": wirecheck.interpreted()}
KEYS = frozenset({"service.name", "k8s.namespace.name"})


def read(module: ModuleType, resources: list[bytes], keys: frozenset[str] | None) -> dict[str, object] | None:
    """routing_attributes of a ResourceSpans record holding `resources` as its `resource` fields, after the walk."""
    record = b"".join(field(1, r) for r in resources)
    schema = module.build_schema([ExportTraceServiceRequest.DESCRIPTOR, ExportLogsServiceRequest.DESCRIPTOR])
    check = module.RecordCheck(
        schema,
        "opentelemetry.proto.trace.v1.ResourceSpans",
        "opentelemetry.proto.trace.v1.Span",
        "opentelemetry.proto.resource.v1.Resource",
    )
    walk = check.check(record, 0, len(record))
    result: dict[str, object] | None = module.routing_attributes(record, walk.resources, keys)
    return result


def upb(resources: list[bytes], keys: frozenset[str] | None) -> dict[str, object]:
    """What the decoded message says: every `resource` field merged, as protobuf merges them."""
    record = ResourceSpans.FromString(b"".join(field(1, r) for r in resources))
    return resource_attributes(record.resource, keys)


def pair(key: bytes | None, *values: bytes, extra: bytes = b"") -> bytes:
    """A KeyValue on the wire: its key (None: no key field), each `value` field as given, then `extra`."""
    return (field(1, key) if key is not None else b"") + b"".join(field(2, v) for v in values) + extra


def string(text: bytes) -> bytes:
    return field(1, text)  # AnyValue.string_value


INT_7 = varint(3 << 3) + varint(7)  # AnyValue.int_value = 7
UNKNOWN_VARINT = varint(9 << 3) + varint(300)
UNKNOWN_FIXED = varint(12 << 3 | 1) + bytes(8) + varint(13 << 3 | 5) + bytes(4)
GROUP = varint(10 << 3 | 3) + varint(10 << 3 | 4)  # an empty group, field 10

#: name -> (the Resource fields of a record, whether routing_attributes defers to upb: with KEYS, with every key)
CASES: dict[str, tuple[list[bytes], bool, bool]] = {
    "no resource": ([], False, False),
    "plain strings": (
        [field(1, pair(b"service.name", string(b"checkout"))) + field(1, pair(b"a", string(b"b")))],
        False,
        False,
    ),
    "unicode value": ([field(1, pair(b"service.name", string("caf\u00e9".encode())))], False, False),
    "empty string value": ([field(1, pair(b"service.name", string(b"")))], False, False),
    "pair without a value": ([field(1, pair(b"service.name"))], False, False),
    "empty AnyValue": ([field(1, pair(b"service.name", b""))], False, False),
    "pair without a key": ([field(1, pair(None, string(b"x")))], False, False),
    "duplicate key: the first wins": (
        [field(1, pair(b"service.name", string(b"first"))) + field(1, pair(b"service.name", INT_7))],
        False,
        False,
    ),
    "key field twice: the last wins": (
        [field(1, pair(b"other", string(b"v"), extra=field(1, b"service.name")))],
        False,
        False,
    ),
    "string_value twice: the last wins": ([field(1, pair(b"service.name", string(b"a") + string(b"b")))], False, False),
    "int then string: the string wins": ([field(1, pair(b"service.name", INT_7 + string(b"s")))], False, False),
    "unknown fields everywhere": (
        [
            UNKNOWN_VARINT
            + field(1, pair(b"service.name", string(b"s") + UNKNOWN_FIXED, extra=UNKNOWN_VARINT))
            + varint(2 << 3)
            + varint(3)  # dropped_attributes_count
            + field(3, b"")  # an EntityRef
        ],
        False,
        False,
    ),
    "an unwanted key's values are not read": ([field(1, pair(b"host.id", INT_7, INT_7))], False, True),
    "wanted key with an int value": ([field(1, pair(b"service.name", INT_7))], True, True),
    "string then int: the int wins": ([field(1, pair(b"service.name", string(b"s") + INT_7))], True, True),
    "two value fields merge": ([field(1, pair(b"service.name", string(b"a"), string(b"b")))], True, True),
    "two resource fields merge": (
        [field(1, pair(b"service.name", string(b"a"))), field(1, pair(b"x", string(b"y")))],
        True,
        True,
    ),
    "a group in the Resource": ([GROUP + field(1, pair(b"service.name", string(b"a")))], True, True),
    "a group in a pair": ([field(1, pair(b"service.name", string(b"a"), extra=GROUP))], True, True),
    "a group in an AnyValue": ([field(1, pair(b"service.name", string(b"a") + GROUP))], True, True),
}


@pytest.mark.parametrize("mode", sorted(MODULES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_routing_attributes_read_what_upb_decodes_or_defer_to_it(name: str, mode: str) -> None:
    resources, *defers = CASES[name]
    for keys, deferred in zip((KEYS, None), defers, strict=True):
        got = read(MODULES[mode], resources, keys)
        if deferred:
            assert got is None
        else:
            assert got == upb(resources, keys)
            assert got is not None and all(type(v) in (str, type(None)) for v in got.values())


texts = st.text(max_size=12)
any_values = otlp_strategies.any_values(texts, max_bytes=8, max_leaves=4)
pairs = st.builds(
    KeyValue, key=st.one_of(texts, st.sampled_from(sorted(KEYS))), value=st.one_of(st.just(AnyValue()), any_values)
)


@settings(
    max_examples=200, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    attributes=st.lists(pairs, max_size=6), keys=st.sampled_from([KEYS, None]), mode=st.sampled_from(sorted(MODULES))
)
def test_random_resources_agree_with_upb(attributes: list[KeyValue], keys: frozenset[str] | None, mode: str) -> None:
    resource = Resource(attributes=attributes).SerializeToString()
    got = read(MODULES[mode], [resource], keys)
    event("read" if got is not None else "deferred to upb")
    if got is not None:
        assert got == upb([resource], keys)
    else:  # only a wanted, first-seen key with a value that is not a string defers
        wanted = [kv for kv in attributes if keys is None or kv.key in keys]
        first = {kv.key: kv for kv in reversed(wanted)}
        assert any(kv.value.WhichOneof("value") not in (None, "string_value") for kv in first.values())

"""The strict wire check (route/wirecheck.py) against requests built by construction, compiled and interpreted.

Every case is a request whose verdict under prost's rules (Relay's decoder) follows from how it was built: a
known field written with another wire type, an unknown field of each wire type, a group, a varint of 10 or 11
bytes, strings that are or are not UTF-8, nesting at and past the limit. The same cases check the Sentry
emulator's independent reading of those rules (upb, then `prost_rules` on the parsed message), and upb alone,
which accepts the wrong wire types: the gap the wire check closes. A hypothesis test then builds random
requests from the OTLP schema, with faults injected at known places, and holds all of them to the same truth.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.route import wirecheck
from sentryroute_forwarder.route.validate import WIRE_CHECK_MODE, validate_request
from sentryroute_forwarder.route.wire import record_bounds

from sentryroute.emulator.ingest.prost_rules import prost_refusal
from tests.forwarder.support import field, varint

REQUEST: dict[Signal, Any] = {Signal.TRACES: ExportTraceServiceRequest, Signal.LOGS: ExportLogsServiceRequest}
RECORD = {
    Signal.TRACES: ("opentelemetry.proto.trace.v1.ResourceSpans", "opentelemetry.proto.trace.v1.Span"),
    Signal.LOGS: ("opentelemetry.proto.logs.v1.ResourceLogs", "opentelemetry.proto.logs.v1.LogRecord"),
}
MODULES = {"installed": wirecheck, "interpreted": wirecheck.interpreted()}
REPO = Path(__file__).resolve().parents[2]


# -- the three readers --------------------------------------------------------------------------------------


def walker(module: ModuleType, signal: Signal) -> Callable[[bytes], str | None]:
    schema = module.build_schema([ExportTraceServiceRequest.DESCRIPTOR, ExportLogsServiceRequest.DESCRIPTOR])
    record, item = RECORD[signal]
    check = module.RecordCheck(schema, record, item, "opentelemetry.proto.resource.v1.Resource")

    def verdict(body: bytes) -> str | None:
        for _, start, end in record_bounds(memoryview(body)):
            try:
                check.check(body, start, end)
            except module.WireError as exc:
                return str(exc)
        return None

    return verdict


def emulator(signal: Signal, body: bytes) -> str | None:
    try:
        return prost_refusal(REQUEST[signal].FromString(body))
    except DecodeError as exc:
        return str(exc)


def upb(signal: Signal, body: bytes) -> str | None:
    try:
        REQUEST[signal].FromString(body)
    except DecodeError as exc:
        return str(exc)
    return None


# -- building requests by hand -------------------------------------------------------------------------------


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vint(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def fixed64(number: int) -> bytes:
    return key(number, 1) + b"\x11" * 8


def fixed32(number: int) -> bytes:
    return key(number, 5) + b"\x22" * 4


def span(*extra: bytes) -> bytes:
    return field(1, b"\x01" * 16) + field(2, b"\x02" * 8) + field(5, b"op") + b"".join(extra)


def attribute(value: bytes) -> bytes:
    """A span's attribute (Span.attributes = 9) whose AnyValue body is `value`."""
    return field(9, field(1, b"k") + field(2, value))


SERVICE = field(1, field(1, b"service.name") + field(2, field(1, b"checkout")))


def traces(span_bytes: bytes, *, resource: bytes = SERVICE, scope: bytes = b"", record: bytes = b"") -> bytes:
    return field(1, field(1, resource) + field(2, scope + field(2, span_bytes)) + record)


def logs(record_bytes: bytes) -> bytes:
    return field(1, field(1, SERVICE) + field(2, field(2, record_bytes)))


def nested(deepest: int, inner: bytes = b"", *, beside: bytes = b"") -> bytes:
    """A traces request whose deepest message is at level `deepest` (the request is 0, a span attribute's
    AnyValue 5, then ArrayValue and AnyValue alternate), holding `inner`; `beside` goes into the span."""
    body, level = inner, deepest
    while level > 5:
        body = field(1, body) if level % 2 else field(5, body)  # AnyValue in ArrayValue.values, or array_value
        level -= 1
    return traces(span(attribute(body), beside))


PLAIN_PAIR = field(1, b"k") + field(2, field(1, b"s"))  # a KeyValue as most attributes are

UNKNOWN_OF_EVERY_WIRE_TYPE = (
    vint(100, 1) + fixed64(101) + fixed32(102) + field(103, b"\xff\xfe")
    # a group holding a varint and an empty nested group
    + key(104, 3) + vint(1, 1) + key(2, 3) + key(2, 4) + key(104, 4)
)  # fmt: skip

#: (signal, request, substring of the reason or None when prost decodes it).
WRONG_WIRE_TYPES: dict[str, tuple[Signal, bytes, str]] = {
    "span-name-as-varint": (Signal.TRACES, traces(span(vint(5, 7))), "Span.name"),
    "span-kind-as-length-delimited": (Signal.TRACES, traces(span(field(6, b"\x01"))), "Span.kind"),
    "span-start-time-as-varint": (Signal.TRACES, traces(span(vint(7, 1))), "Span.start_time_unix_nano"),
    "span-flags-as-64-bit": (Signal.TRACES, traces(span(fixed64(16))), "Span.flags"),
    "span-attributes-as-varint": (Signal.TRACES, traces(span(vint(9, 1))), "Span.attributes"),
    "span-name-as-group": (Signal.TRACES, traces(span(key(5, 3) + key(5, 4))), "Span.name"),
    "attribute-string-as-varint": (Signal.TRACES, traces(span(attribute(vint(1, 5)))), "AnyValue.string_value"),
    "attribute-int-as-64-bit": (Signal.TRACES, traces(span(attribute(fixed64(3)))), "AnyValue.int_value"),
    "attribute-double-as-varint": (Signal.TRACES, traces(span(attribute(vint(4, 1)))), "AnyValue.double_value"),
    "attribute-bool-as-32-bit": (Signal.TRACES, traces(span(attribute(fixed32(2)))), "AnyValue.bool_value"),
    "array-values-as-varint": (Signal.TRACES, traces(span(attribute(field(5, vint(1, 1))))), "ArrayValue.values"),
    "array-item-string-as-varint": (
        Signal.TRACES,
        traces(span(attribute(field(5, field(1, vint(1, 3)))))),
        "AnyValue.string_value",
    ),
    "kvlist-values-as-32-bit": (Signal.TRACES, traces(span(attribute(field(6, fixed32(1))))), "KeyValueList.values"),
    "event-name-as-varint": (Signal.TRACES, traces(span(field(11, fixed64(1) + vint(2, 1)))), "Event.name"),
    "link-span-id-as-varint": (Signal.TRACES, traces(span(field(13, field(1, b"\x01" * 16) + vint(2, 1)))), "Link"),
    "status-code-as-length-delimited": (Signal.TRACES, traces(span(field(15, field(3, b"\x02")))), "Status.code"),
    "resource-attribute-key-as-varint": (Signal.TRACES, traces(span(), resource=field(1, vint(1, 1))), "KeyValue.key"),
    "scope-name-as-varint": (Signal.TRACES, traces(span(), scope=field(1, vint(1, 1))), "InstrumentationScope.name"),
    "record-schema-url-as-varint": (Signal.TRACES, traces(span(), record=vint(3, 1)), "ResourceSpans.schema_url"),
    "log-body-as-varint": (Signal.LOGS, logs(vint(5, 1)), "LogRecord.body"),
    "log-body-string-as-varint": (Signal.LOGS, logs(field(5, vint(1, 1))), "AnyValue.string_value"),
    "log-severity-as-length-delimited": (Signal.LOGS, logs(field(2, b"\x09")), "LogRecord.severity_number"),
    "log-time-as-varint": (Signal.LOGS, logs(vint(1, 5)), "LogRecord.time_unix_nano"),
    "log-trace-id-as-64-bit": (Signal.LOGS, logs(fixed64(9)), "LogRecord.trace_id"),
}

OTHER_RULES: dict[str, tuple[Signal, bytes, str | None]] = {
    # prost decodes these
    "unknown-fields-of-every-wire-type": (
        Signal.TRACES,
        traces(span(UNKNOWN_OF_EVERY_WIRE_TYPE, attribute(UNKNOWN_OF_EVERY_WIRE_TYPE)), record=vint(200, 1)),
        None,
    ),
    "varint-of-10-bytes": (Signal.TRACES, traces(span(key(6, 0) + b"\xff" * 9 + b"\x01")), None),
    "key-not-minimally-encoded": (Signal.TRACES, traces(span(b"\xb0\x80\x80\x80\x00\x01")), None),
    "bytes-value-not-utf8": (Signal.TRACES, traces(span(attribute(field(7, b"\xff\xfe")))), None),
    "utf8-of-every-length": (Signal.TRACES, traces(span(field(5, "é ✓ 𝄞 x".encode()))), None),
    "bad-id-sizes-are-relays-per-span-business": (Signal.TRACES, traces(field(1, b"\x01" * 3) + field(2, b"")), None),
    "a-message-at-level-100": (Signal.TRACES, nested(100), None),
    # an AnyValue at 97 holding a KeyValueList (98), a KeyValue (99) and its AnyValue (100) with a string
    "a-known-field-at-level-100": (
        Signal.TRACES,
        nested(97, field(6, field(1, PLAIN_PAIR))),
        None,
    ),
    "a-group-at-level-98": (Signal.TRACES, nested(98, key(900, 3) + vint(1, 1) + key(900, 4)), None),
    # prost refuses these
    "varint-10th-byte-overflows": (Signal.TRACES, traces(span(key(6, 0) + b"\xff" * 9 + b"\x02")), "64 bits"),
    "varint-of-11-bytes": (Signal.TRACES, traces(span(key(6, 0) + b"\xff" * 10 + b"\x01")), "64 bits"),
    "key-over-32-bits": (Signal.TRACES, traces(span(b"\x80\x80\x80\x80\x10\x01")), "key"),
    "field-number-0": (Signal.TRACES, traces(span(b"\x00\x01")), "field number 0"),
    "wire-type-6": (Signal.TRACES, traces(span(key(100, 6))), "wire type 6"),
    "end-group-outside-a-group": (Signal.TRACES, traces(span(key(100, 4))), "end-group"),
    "group-ended-by-another-tag": (Signal.TRACES, traces(span(key(100, 3) + key(101, 4))), "end-group"),
    "group-never-ended": (Signal.TRACES, traces(span(key(100, 3) + vint(1, 1))), "group"),
    "name-not-utf8": (Signal.TRACES, traces(span(field(5, b"\xff"))), "UTF-8"),
    "name-utf16-surrogate": (Signal.TRACES, traces(span(field(5, b"\xed\xa0\x80"))), "UTF-8"),
    "name-overlong-utf8": (Signal.TRACES, traces(span(field(5, b"\xc0\x80"))), "UTF-8"),
    "name-truncated-utf8": (Signal.TRACES, traces(span(field(5, "é".encode()[:1]))), "UTF-8"),
    "attribute-key-not-utf8": (Signal.TRACES, traces(span(field(9, field(1, b"\xff")))), "KeyValue.key"),
    "length-past-its-message": (Signal.TRACES, traces(span(key(5, 2) + varint(50) + b"ab")), "past the end"),
    "fixed64-past-its-message": (Signal.TRACES, traces(span(key(7, 1) + b"\x00" * 4)), "past the end"),
    "a-message-at-level-101": (Signal.TRACES, nested(101), "deeper than 100"),
    # an AnyValue at 95, then KeyValueList 96, KeyValue 97, AnyValue 98, KeyValueList 99 and a plain KeyValue
    # at 100 whose AnyValue would be at 101 (the walk's pair shortcut must not take it)
    "a-known-field-at-level-101": (
        Signal.TRACES,
        nested(95, field(6, field(1, field(1, b"k") + field(2, field(6, field(1, PLAIN_PAIR)))))),
        "deeper than 100",
    ),
    "an-unknown-field-at-level-100": (Signal.TRACES, nested(100, vint(900, 1), beside=vint(900, 1)), "deeper"),
    "a-group-at-level-99": (
        Signal.TRACES,
        nested(99, key(900, 3) + vint(1, 1) + key(900, 4), beside=vint(900, 1)),
        "deeper",
    ),
}

#: What the emulator cannot see (prost_rules' docstring): refused by prost and the wire check, accepted by it.
EMULATOR_GAPS = {"varint-10th-byte-overflows"}
#: What upb accepts although prost does not: the gap the wire check closes.
UPB_GAPS = {*WRONG_WIRE_TYPES, "varint-10th-byte-overflows", "an-unknown-field-at-level-100", "a-group-at-level-99"}
CASES = {**WRONG_WIRE_TYPES, **OTHER_RULES}


@pytest.mark.parametrize("mode", sorted(MODULES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_wire_check_follows_prost(name: str, mode: str) -> None:
    signal, body, expected = CASES[name]
    reason = walker(MODULES[mode], signal)(body)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason, reason


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_emulator_and_upb_against_the_same_cases(name: str) -> None:
    signal, body, expected = CASES[name]
    refused_by_prost = expected is not None
    assert (emulator(signal, body) is not None) == (refused_by_prost and name not in EMULATOR_GAPS)
    assert (upb(signal, body) is not None) == (refused_by_prost and name not in UPB_GAPS)


@pytest.mark.parametrize("name", sorted(WRONG_WIRE_TYPES))
def test_intake_rejects_a_wrong_wire_type_by_its_resource_and_names_the_field(name: str) -> None:
    signal, bad, expected = WRONG_WIRE_TYPES[name]
    good = traces(span()) if signal is Signal.TRACES else logs(field(6, field(1, b"k")))
    validation = validate_request(signal, good + bad + good, keys={"service.name"})
    assert [r.index for r in validation.rejected] == [1]
    assert expected in validation.rejected[0].reason
    assert validation.rejected[0].reason.startswith("not valid protobuf (")
    assert [(r.attributes, r.items) for r in validation.records] == [({"service.name": "checkout"}, 1)] * 2


def test_the_installed_wire_check_is_compiled() -> None:
    """`make .venv/.dev-installed` (CI) builds it; a missing build would make the forwarder ~70x slower."""
    assert wirecheck.COMPILED, "run `make .venv/.dev-installed`: setup.py compiles route/wirecheck.py with mypyc"
    assert WIRE_CHECK_MODE == "compiled"
    assert not MODULES["interpreted"].COMPILED


@pytest.mark.parametrize("mode", sorted(MODULES))
def test_strings_of_every_length_with_a_bad_or_a_wide_byte_at_every_place(mode: str) -> None:
    """The ASCII scan reads 8 bytes at a time (and, for a short string, the bytes before it, masked out): a
    byte >= 0x80 anywhere in a string of any length sends it to the full UTF-8 check, and one just before it
    (here the span id and the name's own key and length, or nothing at all) never does."""
    check = walker(MODULES[mode], Signal.TRACES)
    module = MODULES[mode]
    schema = module.build_schema([ExportTraceServiceRequest.DESCRIPTOR])
    record = module.RecordCheck(schema, *RECORD[Signal.TRACES], "opentelemetry.proto.resource.v1.Resource")
    for length in range(0, 41):
        ascii_name = b"n" * length
        for before in (b"", field(2, b"\xff" * 8), field(2, b"\xff" * 8) + vint(900, 2**63)):
            assert check(traces(span(before, field(5, ascii_name)))) is None, (length, before)
        # A record that is one string field: the string starts within the first 8 bytes of the buffer.
        record.check(field(3, ascii_name), 0, len(field(3, ascii_name)))
        with pytest.raises(module.WireError, match="UTF-8"):
            bad = field(3, ascii_name + b"\xff")
            record.check(bad, 0, len(bad))
        for place in range(length):
            bad = ascii_name[:place] + b"\xff" + ascii_name[place + 1 :]
            reason = check(traces(span(field(2, b"\xff" * 8), field(5, bad))))
            assert reason is not None and "Span.name" in reason and "UTF-8" in reason, (length, place)
            if place + 2 <= length:
                wide = ascii_name[:place] + "é".encode() + ascii_name[place + 2 :]
                assert check(traces(span(field(5, wide)))) is None, (length, place)


def _pairs() -> list[bytes]:
    """KeyValue bodies in the shape the walk's pair shortcut takes and in every near miss of it."""
    text = {"empty": b"", "short": b"k", "127": b"k" * 127, "128": b"k" * 128, "wide": "é".encode(), "bad": b"\xff"}
    values = [
        field(1, s)
        for s in text.values()  # string_value
    ] + [
        b"",  # an empty AnyValue
        vint(2, 1),  # bool_value
        field(1, b"s") + vint(3, 7),  # a string, then an int_value
        field(1, b"s") + vint(900, 1),  # and an unknown field
        vint(1, 1),  # string_value as a varint
        field(1, b"s") + field(1, b"t"),  # two strings
        key(1, 2) + varint(5) + b"abc",  # a length past its end
    ]
    pairs = []
    for k in text.values():
        for v in values:
            pairs += [field(1, k) + field(2, v), field(2, v) + field(1, k), field(1, k) + field(2, v) + vint(900, 1)]
            pairs += [field(1, k) + field(2, v) + field(2, v), field(1, k) + key(2, 0) + varint(len(v))]
            # lengths as 2-byte varints of the same values (not minimal: prost reads them all the same)
            pairs += [key(1, 2) + bytes([0x80 | len(k), 0]) + k + field(2, v) if len(k) < 0x80 else field(2, v)]
            pairs += [field(1, k) + key(2, 2) + bytes([0x80 | len(v), 0]) + v if len(v) < 0x80 else field(1, k)]
        pairs += [field(1, k), field(1, k)[:-1] if k else b"\x0a"]
    # a value whose length is the 2-byte varint 0x82 0x0a (1,282: past the end), but whose first byte, 130, is
    # what is left after it, followed by what would be a string of 128 ASCII bytes
    pairs.append(field(1, b"k") + b"\x12\x82\x0a\x80" + b"s" * 128)
    return pairs


@pytest.mark.parametrize("mode", sorted(MODULES))
def test_the_pair_shortcut_gives_the_verdicts_of_the_field_by_field_walk(mode: str) -> None:
    """An attribute in its everyday shape is checked without the walk's two nested calls; every pair here, as a
    span attribute and as a resource attribute, gets the same verdict and reason with the shortcut and without
    it, and the same acceptance from the emulator's reading of prost's rules."""
    module = MODULES[mode]
    schema = module.build_schema([ExportTraceServiceRequest.DESCRIPTOR])
    checks = [module.RecordCheck(schema, *RECORD[Signal.TRACES], "opentelemetry.proto.resource.v1.Resource")]
    checks.append(module.RecordCheck(schema, *RECORD[Signal.TRACES], "opentelemetry.proto.resource.v1.Resource"))
    assert checks[0].pair_type >= 0, "the shortcut is off: opentelemetry-proto's KeyValue changed shape"
    checks[1].pair_type = -1
    taken = 0
    for pair in _pairs():
        for body in (traces(span(field(9, pair))), traces(span(), resource=field(1, pair))):
            reasons = []
            for check in checks:
                try:
                    walk = check.check(body, *record_bounds(memoryview(body))[0][1:])
                    reasons.append(f"ok {walk.items} {walk.resources}")
                except module.WireError as exc:
                    reasons.append(str(exc))
            assert reasons[0] == reasons[1], (pair, reasons)
            assert (emulator(Signal.TRACES, body) is None) == reasons[0].startswith("ok "), (pair, reasons)
        taken += module._plain_pair(pair, 0, len(pair))
    assert taken == 3 * 2  # ASCII keys of 0, 1 or 127 bytes with an ASCII value of 0 or 1 byte


@pytest.mark.parametrize("mode", sorted(MODULES))
def test_the_ascii_scan_agrees_with_bytes_isascii_on_random_strings(mode: str) -> None:
    """The word-at-a-time scan against `bytes.isascii` on seeded random buffers: every length 0-40, high bytes
    before, inside and after the string (compiled, short strings after high bytes were once judged by bytes
    outside them: the mask of the bytes before was computed with a 32-bit shift). `make fuzz` runs 2,000,000
    cases with a fresh seed (SENTRYROUTE_FUZZ=long)."""
    scan = MODULES[mode]._ascii
    long = os.environ.get("SENTRYROUTE_FUZZ") == "long"
    rng = random.Random() if long else random.Random(8)
    for _ in range(2_000_000 if long else 20_000):
        size = rng.randint(0, 40)
        high = rng.choice((0.0, 0.05, 0.3, 0.9))
        buf = bytes(rng.randint(0x80, 0xFF) if rng.random() < high else rng.randint(0, 0x7F) for _ in range(size))
        pos = rng.randint(0, size)
        stop = rng.randint(pos, size)
        assert scan(buf, pos, stop) == buf[pos:stop].isascii(), (buf.hex(), pos, stop)
    for length in range(1, 8):  # the case that was wrong: every byte before the string high
        buf = b"\xff" * (16 - length) + b"a" * length
        assert scan(buf, 16 - length, 16), length


# -- random requests from the OTLP schema, faults injected by construction ---------------------------------

_WIRE = {"varint": 0, "fixed64": 1, "length": 2, "fixed32": 5}


def _expected_wire(descriptor: Any) -> int:
    kind = type(descriptor)
    if descriptor.type in (kind.TYPE_MESSAGE, kind.TYPE_STRING, kind.TYPE_BYTES):
        return 2
    if descriptor.type in (kind.TYPE_FIXED64, kind.TYPE_SFIXED64, kind.TYPE_DOUBLE):
        return 1
    if descriptor.type in (kind.TYPE_FIXED32, kind.TYPE_SFIXED32, kind.TYPE_FLOAT):
        return 5
    return 0


def _value(draw: st.DrawFn, number: int, wire: int) -> bytes:
    """A well-formed value of any wire type, for unknown fields and wrongly typed known ones."""
    if wire == 0:
        return vint(number, draw(st.integers(0, 2**64 - 1)))
    if wire == 1:
        return key(number, 1) + draw(st.binary(min_size=8, max_size=8))
    if wire == 5:
        return key(number, 5) + draw(st.binary(min_size=4, max_size=4))
    return field(number, draw(st.binary(max_size=6)))


@st.composite
def _message(draw: st.DrawFn, descriptor: Any, level: int, faults: list[str]) -> bytes:
    parts = []
    oneofs: set[str] = set()  # one member per oneof, as encoders write them (upb keeps only the last one)
    # One occurrence per singular message field, as encoders write them: a second one is merged into the first,
    # and a oneof member set by it replaces the first one's, faults included, so upb (and the emulator, which
    # judges upb's result) never sees a fault prost refuses while decoding the first occurrence.
    singular: set[int] = set()
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 4)) == 0:
            number = draw(st.integers(100, 3000))  # OTLP's field numbers are all below 100
            assert number not in [f.number for f in descriptor.fields]
            parts.append(_value(draw, number, draw(st.sampled_from(sorted(_WIRE.values())))))
            continue
        known = draw(st.sampled_from(list(descriptor.fields)))
        if known.containing_oneof is not None:
            if known.containing_oneof.name in oneofs:
                continue
            oneofs.add(known.containing_oneof.name)
        if known.message_type is not None and not known.is_repeated:
            if known.number in singular:
                continue
            singular.add(known.number)
        expected = _expected_wire(known)
        if draw(st.integers(0, 29)) == 0:
            wire = draw(st.sampled_from([w for w in _WIRE.values() if w != expected]))
            parts.append(_value(draw, known.number, wire))
            faults.append(f"{descriptor.name}.{known.name}")
        elif known.message_type is not None:
            if level < 9:
                parts.append(field(known.number, draw(_message(known.message_type, level + 1, faults))))
        elif known.type == type(known).TYPE_STRING:
            text = draw(st.text(max_size=6)).encode()
            if draw(st.integers(0, 29)) == 0:
                text += b"\xc3"  # a lead byte with no continuation
                faults.append(f"{descriptor.name}.{known.name} UTF-8")
            parts.append(field(known.number, text))
        else:
            parts.append(_value(draw, known.number, expected))
    return b"".join(parts)


@st.composite
def built_requests(draw: st.DrawFn) -> tuple[Signal, bytes, list[str]]:
    signal = draw(st.sampled_from([Signal.TRACES, Signal.LOGS]))
    faults: list[str] = []
    record = REQUEST[signal].DESCRIPTOR.fields_by_number[1].message_type
    body = b"".join(field(1, draw(_message(record, 1, faults))) for _ in range(draw(st.integers(1, 3))))
    return signal, body, faults


@settings(max_examples=150, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(built_requests())
def test_random_requests_with_faults_injected(case: tuple[Signal, bytes, list[str]]) -> None:
    signal, body, faults = case
    event("UTF-8 fault" if any(f.endswith("UTF-8") for f in faults) else "wire type fault" if faults else "clean")
    expected_refusal = bool(faults)
    for module in MODULES.values():
        assert (walker(module, signal)(body) is not None) == expected_refusal, faults
    assert (emulator(signal, body) is not None) == expected_refusal, faults
    wire_type_faults = [f for f in faults if not f.endswith("UTF-8")]
    if not wire_type_faults:
        assert (upb(signal, body) is not None) == expected_refusal


#: A forwarder process whose wire check is the interpreted module (as an install without a compiler has it).
INTERPRETED_FORWARDER = """
import sys
import sentryroute_forwarder.route as route
from sentryroute_forwarder.route import wirecheck
route.wirecheck = sys.modules["sentryroute_forwarder.route.wirecheck"] = wirecheck.interpreted()
from sentryroute.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_forwarder_running_the_interpreted_check_says_so() -> None:
    """A warning before it listens, and `sentryroute_wire_check_info{mode="interpreted"}` on /metrics."""
    command = [
        sys.executable,
        "-c",
        INTERPRETED_FORWARDER,
        "forwarder",
        "--routes",
        str(REPO / "examples" / "routes.json"),
    ]
    command += ["--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO) as process:
        try:
            assert process.stderr is not None
            lines = []
            for line in process.stderr:
                lines.append(line)
                if match := re.search(r"admin 127\.0\.0\.1:(\d+)", line):
                    admin = int(match.group(1))
                    break
            else:
                pytest.fail("the forwarder did not say where it listens: " + "".join(lines))
            assert any("WARNING" in line and "INTERPRETED wire check" in line for line in lines), lines
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as resp:
                metrics = resp.read().decode()
            assert 'sentryroute_wire_check_info{mode="interpreted"} 1.0' in metrics
            assert 'mode="compiled"' not in metrics
        finally:
            process.terminate()
            process.wait(timeout=30)

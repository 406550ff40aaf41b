"""Strict protobuf wire check of OTLP resource records: prost's decode rules, the decoder Sentry (Relay) runs.

upb, the decoder this forwarder uses, keeps a known field sent with the wrong wire type (a span's `name`, a
string, encoded as a varint) as an unknown field; prost (`check_wire_type`) rejects the whole request, so one
such span sinks every other client's data in the batch it joins. This module walks a record the way prost
decodes it and refuses exactly what prost refuses:

- every known field has the wire type its schema kind needs (varint for integers, enums and bools; 64-bit for
  fixed64/double; 32-bit for fixed32/float; length-delimited for strings, bytes and messages);
- framing: keys are varints of at most 32 bits with a field number > 0 and a wire type 0-5, varints are at most
  10 bytes and fit in 64 bits, lengths and fixed-size values stay inside their message, every message ends
  exactly where its length says;
- `string` fields are UTF-8;
- nesting: prost's recursion limit of 100 (a message at depth 101 counting the request as 0 fails, and so
  does an unknown field inside a message at depth 100);
- unknown fields are skipped, groups included (matched end-group tag, nested groups count towards the limit);
  an end-group outside a group fails.

The schema is opentelemetry-proto's (the same descriptors upb decodes with), flattened at import time into a
table of one byte per (message, field number). The module is compiled with mypyc when the package is
installed (setup.py): typed Python with native integers, ~0.2 µs per span (docs/performance-facts.md). Run
interpreted, it is ~80x slower; `COMPILED` says which one is running. Two shortcuts keep the same verdicts:
strings are scanned for non-ASCII bytes 8 at a time (only those that have one are decoded), and an attribute
(KeyValue) in its everyday shape — an ASCII key and one ASCII string value — is checked in one pass instead of
two nested walks; any other attribute is walked field by field.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Collection
from types import ModuleType
from typing import Any, Final

from librt.strings import read_i64_le
from mypy_extensions import i64

__all__ = [
    "COMPILED",
    "RecordCheck",
    "Walk",
    "WireError",
    "build_schema",
    "interpreted",
    "routing_attributes",
    "source_path",
]

# Field kinds of the table (one byte per field; 0 = unknown field number); length-delimited ones from _BYTES up.
_VARINT: Final = 1  # int32/int64/uint32/uint64/sint32/sint64/bool/enum: wire type 0
_FIXED64: Final = 2  # fixed64/sfixed64/double: wire type 1
_FIXED32: Final = 3  # fixed32/sfixed32/float: wire type 5
_BYTES: Final = 4  # bytes: wire type 2
_STRING: Final = 5  # string: wire type 2, UTF-8
_MESSAGE: Final = 8  # message type m is 8 + m: wire type 2
_RECURSION_LIMIT: Final = 100
_WIRE_NAMES: Final = ("varint", "64-bit", "length-delimited", "start-group", "end-group", "32-bit")


def _compiled() -> bool:
    # A mypyc-compiled module has no Python code objects for its functions.
    return not hasattr(_compiled, "__code__")


#: True when this module runs as a mypyc-compiled extension (setup.py builds it), False when interpreted.
COMPILED: Final = _compiled()


def source_path() -> str:
    """This module's Python source (beside the compiled extension when there is one)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "wirecheck.py")


def interpreted() -> ModuleType:
    """A fresh copy of this module run by CPython from its source: the tests and benchmarks compare both."""
    spec = importlib.util.spec_from_file_location("sentryroute_forwarder.route.wirecheck_interpreted", source_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class WireError(ValueError):
    """The record does not decode under prost's rules; the message is short and safe to return to clients."""


class _Schema:
    """Message types reachable from the roots, and the one-byte field table the walker reads."""

    def __init__(self) -> None:
        self.names: list[str] = []  # message type full names, by index
        self.fields: dict[tuple[int, int], str] = {}  # (type, number) -> field name (error messages only)
        self.width = 0  # field numbers per row of the table (highest known number + 1)
        self.table = b""
        self.index: dict[str, int] = {}


def build_schema(roots: list[Any]) -> _Schema:
    """The table for every message type reachable from `roots` (protobuf message descriptors)."""
    schema = _Schema()
    order: list[Any] = []
    pending = list(roots)
    while pending:
        descriptor = pending.pop(0)
        if descriptor.full_name in schema.index:
            continue
        schema.index[descriptor.full_name] = len(order)
        order.append(descriptor)
        pending.extend(f.message_type for f in descriptor.fields if f.message_type is not None)
    if len(order) > 255 - _MESSAGE:
        raise ValueError("too many message types for the one-byte field table")
    width = 1 + max(f.number for d in order for f in d.fields)
    rows = bytearray(width * len(order))
    for m, descriptor in enumerate(order):
        schema.names.append(descriptor.full_name)
        for f in descriptor.fields:
            rows[m * width + f.number] = _kind(f, schema.index)
            schema.fields[(m, f.number)] = f.name
    schema.width = width
    schema.table = bytes(rows)
    return schema


def _kind(f: Any, index: dict[str, int]) -> int:
    fd = type(f)
    if f.type == fd.TYPE_MESSAGE:
        return _MESSAGE + index[f.message_type.full_name]
    if f.type == fd.TYPE_STRING:
        return _STRING
    if f.type == fd.TYPE_BYTES:
        return _BYTES
    if f.is_repeated:
        # prost also accepts packed (length-delimited) encodings of repeated numbers; OTLP traces and logs have
        # none, so the walker does not implement them: fail loudly if the schema ever grows one.
        raise ValueError(f"{f.full_name}: repeated numeric fields are not supported by the wire check")
    kinds = {
        fd.TYPE_INT32: _VARINT,
        fd.TYPE_INT64: _VARINT,
        fd.TYPE_UINT32: _VARINT,
        fd.TYPE_UINT64: _VARINT,
        fd.TYPE_SINT32: _VARINT,
        fd.TYPE_SINT64: _VARINT,
        fd.TYPE_BOOL: _VARINT,
        fd.TYPE_ENUM: _VARINT,
        fd.TYPE_FIXED64: _FIXED64,
        fd.TYPE_SFIXED64: _FIXED64,
        fd.TYPE_DOUBLE: _FIXED64,
        fd.TYPE_FIXED32: _FIXED32,
        fd.TYPE_SFIXED32: _FIXED32,
        fd.TYPE_FLOAT: _FIXED32,
    }
    if f.type not in kinds:
        raise ValueError(f"{f.full_name}: field type {f.type} is not supported by the wire check")
    return kinds[f.type]


class RecordCheck:
    """Checks resource records (the bodies of the ResourceSpans/ResourceLogs fields of a request)."""

    def __init__(self, schema: _Schema, record_type: str, item_type: str, resource_type: str) -> None:
        self.schema = schema
        self.record_type: i64 = schema.index[record_type]
        self.item_type: i64 = schema.index[item_type]
        self.resource_type: i64 = schema.index[resource_type]
        self.pair_type: i64 = _pair_type(schema)

    def check(self, buf: bytes, start: int, end: int) -> Walk:
        """The walk of buf[start:end] as one record at depth 1 (a field of the request); WireError unless it
        decodes under prost's rules."""
        walk = Walk(self)
        # The request's fields are decoded with prost's full budget, the record's own fields with one less.
        walk._message(buf, start, end, self.record_type, _RECURSION_LIMIT - 1)
        return walk


_PAIR: Final = "opentelemetry.proto.common.v1.KeyValue"
_ANY_VALUE: Final = "opentelemetry.proto.common.v1.AnyValue"


def _pair_type(schema: _Schema) -> int:
    """KeyValue's type in `schema` when its fields are those `_plain_pair` reads (key = 1 a string, value = 2 an
    AnyValue whose string_value = 1 is a string); -1 otherwise."""
    pair, value = schema.index.get(_PAIR, -1), schema.index.get(_ANY_VALUE, -1)
    if pair < 0 or value < 0:
        return -1
    kinds = (schema.table[pair * schema.width + 1], schema.table[pair * schema.width + 2])
    if kinds != (_STRING, _MESSAGE + value) or schema.table[value * schema.width + 1] != _STRING:
        return -1
    return pair


class Walk:
    """One record's walk: `items` counts the spans or log records, `resources` holds the (start, end) of every
    Resource message body (usually one; protobuf merges several)."""

    def __init__(self, check: RecordCheck) -> None:
        self.schema = check.schema
        self.table: bytes = check.schema.table
        self.width: i64 = check.schema.width
        self.item_type: i64 = check.item_type
        self.resource_type: i64 = check.resource_type
        self.pair_type: i64 = check.pair_type
        self.items: i64 = 0
        self.resources: list[tuple[int, int]] = []

    def _message(self, buf: bytes, pos: i64, end: i64, mtype: i64, ctx: i64) -> None:
        table = self.table
        width = self.width
        row = mtype * width
        while pos < end:
            key: i64 = buf[pos]
            if key < 0x80:
                pos += 1
            else:
                key, pos = _varint(buf, pos, end)
                if key < 0 or key > 0xFFFFFFFF:
                    raise WireError("invalid field key")
            wire = key & 7
            number = key >> 3
            if number == 0:
                raise WireError("field number 0")
            kind: i64 = table[row + number] if number < width else 0
            if kind == 0:
                pos = self._skip(buf, pos, end, wire, number, ctx)
                continue
            if kind >= _BYTES:  # bytes, string and message kinds: length-delimited
                if wire != 2:
                    raise WireError(self._wrong_wire(mtype, number, wire, 2))
                length: i64 = buf[pos] if pos < end else 0x80
                if length < 0x80:
                    pos += 1
                else:
                    length, pos = _varint(buf, pos, end)
                if length < 0 or length > end - pos:
                    raise WireError("length-delimited field runs past the end of its message")
                stop = pos + length
                if kind == _STRING:
                    if not _ascii(buf, pos, stop):
                        _utf8(buf, pos, stop, self._name(mtype, number))
                elif kind >= _MESSAGE:
                    if ctx == 0:
                        raise WireError("nested deeper than 100 messages")
                    sub = kind - _MESSAGE
                    if sub == self.item_type:
                        self.items += 1
                    elif sub == self.resource_type:
                        self.resources.append((pos, stop))
                    elif sub == self.pair_type and ctx >= 2 and _plain_pair(buf, pos, stop):
                        pos = stop
                        continue
                    self._message(buf, pos, stop, sub, ctx - 1)
                pos = stop
            elif kind == _VARINT:
                if wire != 0:
                    raise WireError(self._wrong_wire(mtype, number, wire, 0))
                pos = _varint(buf, pos, end)[1]
            elif kind == _FIXED64:
                if wire != 1:
                    raise WireError(self._wrong_wire(mtype, number, wire, 1))
                pos += 8
            else:
                if wire != 5:
                    raise WireError(self._wrong_wire(mtype, number, wire, 5))
                pos += 4
        if pos != end:
            raise WireError("field runs past the end of its message")

    def _skip(self, buf: bytes, pos: i64, end: i64, wire: i64, number: i64, ctx: i64) -> i64:
        """prost's skip_field: the position after an unknown field's value."""
        if ctx == 0:
            raise WireError("nested deeper than 100 messages")
        after = _skip_value(buf, pos, end, wire)
        if after >= 0:
            return after
        if wire == 3:
            while True:
                if pos >= end:
                    raise WireError("group without its end")
                key, pos = _varint(buf, pos, end)
                if key < 0 or key > 0xFFFFFFFF:
                    raise WireError("invalid field key")
                inner = key >> 3
                if inner == 0:
                    raise WireError("field number 0")
                if key & 7 == 4:
                    if inner != number:
                        raise WireError("end-group tag does not match its group")
                    return pos
                pos = self._skip(buf, pos, end, key & 7, inner, ctx - 1)
                if pos > end:
                    raise WireError("field runs past the end of its message")
        if wire == 4:
            raise WireError("end-group tag outside a group")
        raise WireError(f"invalid wire type {wire}")

    def _name(self, mtype: i64, number: i64) -> str:
        name = self.schema.names[mtype].rpartition(".")[2]
        return f"{name}.{self.schema.fields[(int(mtype), int(number))]}"

    def _wrong_wire(self, mtype: i64, number: i64, wire: i64, expected: i64) -> str:
        got = _WIRE_NAMES[wire] if wire < len(_WIRE_NAMES) else f"invalid ({wire})"
        return f"{self._name(mtype, number)} (field {number}) has wire type {got}, expected {_WIRE_NAMES[expected]}"


def _varint(buf: bytes, pos: i64, end: i64) -> tuple[i64, i64]:
    """(value, next position) of the varint at `pos`; value -1 when it needs all 64 bits (>= 2**63)."""
    value: i64 = 0
    shift: i64 = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte: i64 = buf[pos]
        pos += 1
        if shift == 63:
            # The 10th byte holds bit 63 only: prost refuses more (u64 overflow), and any continuation.
            if byte > 1:
                raise WireError("varint longer than 64 bits")
            return (-1 if byte == 1 else value), pos
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


# The top bit of each of the low 7 bytes of a little-endian word; the 8th byte's is the word's sign (a literal
# with all eight does not fit mypyc's tagged integers, and would be unboxed from a Python int at every use).
_HIGH_BITS_7: Final = 0x0080808080808080


def _ascii(buf: bytes, pos: i64, stop: i64) -> bool:
    """Whether buf[pos:stop] is all ASCII (then it is UTF-8), read 8 bytes at a time: most strings are ASCII, and
    a byte at a time this scan was half of the whole walk. Bytes before `pos` may be read, never judged."""
    length = stop - pos
    if length >= 8:
        while pos + 8 <= stop:
            word = read_i64_le(buf, pos)
            if word < 0 or word & _HIGH_BITS_7:
                return False
            pos += 8
        if pos == stop:
            return True
        word = read_i64_le(buf, stop - 8)  # the last 8 bytes: those before `pos` were seen to be ASCII
        return word >= 0 and not (word & _HIGH_BITS_7)
    if length <= 0:
        return True
    if stop >= 8:
        # The 8 bytes ending at `stop`: the string is the top `length` of them; shifting the bytes before it out
        # leaves it in the low `length` bytes. (Not a mask `(1 << n) - 1`: mypyc emits that literal 1 as a C
        # int, and shifting it by 32 or more is undefined; the masks came out short, so short strings after
        # high bytes went to the full UTF-8 decode.)
        word = read_i64_le(buf, stop - 8)
        return word >= 0 and not ((word >> (8 * (8 - length))) & _HIGH_BITS_7)
    while pos < stop:
        if buf[pos] >= 0x80:
            return False
        pos += 1
    return True


def _plain_pair(buf: bytes, pos: i64, stop: i64) -> bool:
    """Whether buf[pos:stop] is a KeyValue in its everyday shape, valid: an ASCII `key` (field 1), then a `value`
    (field 2) that is an AnyValue holding one ASCII `string_value` (field 1), one-byte keys and lengths, nothing
    else. Most attributes are; they are checked here without the walk's two calls. False says nothing: the walk
    then reads the pair field by field (the same rules, so the same verdict)."""
    if stop - pos < 4 or buf[pos] != 0x0A:
        return False
    length: i64 = buf[pos + 1]  # from 0x80 up, the first byte of a longer varint
    pos += 2
    if length >= 0x80 or length > stop - pos or not _ascii(buf, pos, pos + length):
        return False
    pos += length
    # What is left: 0x12, the AnyValue's length, 0x0A, the string's length, the string.
    left = stop - pos
    if left < 4 or left - 2 >= 0x80 or buf[pos] != 0x12 or buf[pos + 1] != left - 2 or buf[pos + 2] != 0x0A:
        return False
    return buf[pos + 3] == left - 4 and _ascii(buf, pos + 4, stop)


def _utf8(buf: bytes, start: i64, stop: i64, name: str) -> None:
    try:
        buf[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"{name}: string field is not valid UTF-8") from None


# Field keys (number << 3 | wire type) `routing_attributes` reads; opentelemetry-proto's common and resource messages.
_KEY_VALUE: Final = 0x0A  # Resource.attributes = 1, length-delimited
_KEY: Final = 0x0A  # KeyValue.key = 1
_VALUE: Final = 0x12  # KeyValue.value = 2
_STRING_VALUE: Final = 1  # AnyValue.string_value, the first of the `value` oneof's members (1-8)
_ONEOF_MEMBERS: Final = 8


def routing_attributes(
    buf: bytes, resources: list[tuple[int, int]], keys: Collection[str] | None
) -> dict[str, object] | None:
    """The attributes named in `keys` (every one when None) of a walked record's Resource, as
    `wire.resource_attributes` reads them from the decoded message: the first of duplicate keys wins, a string
    value is a str, a pair without a value (or with an empty AnyValue) is None.

    `resources` are the walk's Resource bounds, so the framing is known to be sound. None when the Resource is
    not in the shape read here — several `resource` fields, a wanted key whose value is not a string, two
    `value` fields in a pair, a group: protobuf's merge rules apply, and the caller decodes it in full instead.
    """
    attributes: dict[str, object] = {}
    if len(resources) != 1:
        return attributes if not resources else None
    pos: i64 = resources[0][0]
    end: i64 = resources[0][1]
    while pos < end:
        key, pos = _varint(buf, pos, end)
        if key == _KEY_VALUE:
            length, pos = _varint(buf, pos, end)
            if not _read_pair(buf, pos, pos + length, keys, attributes):
                return None
            pos += length
        else:
            pos = _skip_value(buf, pos, end, key & 7)
            if pos < 0:
                return None
    return attributes


def _read_pair(buf: bytes, pos: i64, end: i64, keys: Collection[str] | None, attributes: dict[str, object]) -> bool:
    """Adds one KeyValue to `attributes` when wanted; False when it is not in the shape `routing_attributes` reads."""
    key_start: i64 = 0
    key_end: i64 = 0
    value_start: i64 = -1
    value_end: i64 = -1
    values: i64 = 0
    while pos < end:
        field, pos = _varint(buf, pos, end)
        if field in (_KEY, _VALUE):
            length, pos = _varint(buf, pos, end)
            if field == _KEY:  # a repeated scalar field: the last one wins
                key_start, key_end = pos, pos + length
            else:
                value_start, value_end = pos, pos + length
                values += 1
            pos += length
        else:
            pos = _skip_value(buf, pos, end, field & 7)
            if pos < 0:
                return False
    name = buf[key_start:key_end].decode("utf-8")  # the walk checked it is UTF-8
    if (keys is not None and name not in keys) or name in attributes:
        return True
    if values > 1:
        return False  # several AnyValue fields merge
    # AnyValue: the last member of its `value` oneof wins.
    member: i64 = 0
    string_start: i64 = 0
    string_end: i64 = 0
    pos = value_start
    while pos < value_end:
        field, pos = _varint(buf, pos, value_end)
        number = field >> 3
        if 1 <= number <= _ONEOF_MEMBERS:
            member = number
        if field & 7 == 2:
            length, pos = _varint(buf, pos, value_end)
            if number == _STRING_VALUE:
                string_start, string_end = pos, pos + length
            pos += length
        else:
            pos = _skip_value(buf, pos, value_end, field & 7)
            if pos < 0:
                return False
    if member == 0:
        attributes[name] = None
    elif member == _STRING_VALUE:
        attributes[name] = buf[string_start:string_end].decode("utf-8")
    else:
        return False  # not a string: the decoded message's value is kept as it is
    return True


def _skip_value(buf: bytes, pos: i64, end: i64, wire: i64) -> i64:
    """The position after a field value of wire type `wire`; -1 for a group or an invalid wire type (the caller
    decides). A length past `end` raises; fixed-size values are checked against `end` by the caller."""
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    if wire == 2:
        length, pos = _varint(buf, pos, end)
        if length < 0 or length > end - pos:
            raise WireError("length-delimited field runs past the end of its message")
        return pos + length
    return -1

"""What upb's parse of the reference request costs against schemas that check less (why validation stays a full parse).

    .venv/bin/python bench/upb_schema_bench.py

The request of `bench/validate_bench.py` (10 resources x 50 spans x 11 attributes) parsed by upb against the
generated opentelemetry-proto classes and against schemas built at run time (descriptor_pb2 → message_factory)
that declare less: scalars and bytes left as unknown fields; proto2 (upb then skips UTF-8 checks); a
`KeyValue` whose value is opaque bytes; span attributes opaque; spans opaque (the lite read). CPU µs per span,
median [range] of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import build_request

F = descriptor_pb2.FieldDescriptorProto
S, B, U32, I64, F64, F32, BOOL, DBL, I32 = (
    F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_UINT32, F.TYPE_INT64, F.TYPE_FIXED64, F.TYPE_FIXED32, F.TYPE_BOOL,
    F.TYPE_DOUBLE, F.TYPE_INT32,
)  # fmt: skip
Field = tuple[Any, ...]  # (name, number, scalar type or message name[, "repeated"])

FULL: dict[str, list[Field]] = {
    "AnyValue": [("s", 1, S), ("b", 2, BOOL), ("i", 3, I64), ("d", 4, DBL), ("a", 5, "ArrayValue"),
                 ("kv", 6, "KeyValueList"), ("by", 7, B)],
    "ArrayValue": [("v", 1, "AnyValue", "repeated")],
    "KeyValueList": [("v", 1, "KeyValue", "repeated")],
    "KeyValue": [("k", 1, S), ("v", 2, "AnyValue")],
    "Resource": [("attrs", 1, "KeyValue", "repeated"), ("d", 2, U32)],
    "Scope": [("name", 1, S), ("version", 2, S), ("attrs", 3, "KeyValue", "repeated"), ("d", 4, U32)],
    "Event": [("t", 1, F64), ("name", 2, S), ("attrs", 3, "KeyValue", "repeated"), ("d", 4, U32)],
    "Link": [("tid", 1, B), ("sid", 2, B), ("ts", 3, S), ("attrs", 4, "KeyValue", "repeated"), ("d", 5, U32),
             ("f", 6, F32)],
    "Status": [("m", 2, S), ("c", 3, I32)],
    "Span": [("tid", 1, B), ("sid", 2, B), ("ts", 3, S), ("psid", 4, B), ("name", 5, S), ("kind", 6, I32),
             ("st", 7, F64), ("et", 8, F64), ("attrs", 9, "KeyValue", "repeated"), ("da", 10, U32),
             ("ev", 11, "Event", "repeated"), ("de", 12, U32), ("links", 13, "Link", "repeated"), ("dl", 14, U32),
             ("status", 15, "Status"), ("flags", 16, F32)],
    "ScopeSpans": [("scope", 1, "Scope"), ("spans", 2, "Span", "repeated"), ("url", 3, S)],
    "ResourceSpans": [("resource", 1, "Resource"), ("ss", 2, "ScopeSpans", "repeated"), ("url", 3, S)],
    "Request": [("rs", 1, "ResourceSpans", "repeated")],
}  # fmt: skip
# Only what carries strings or messages: every scalar and bytes field left to upb's unknown-field path.
STRINGS_ONLY = {
    **FULL,
    "AnyValue": [("s", 1, S), ("a", 5, "ArrayValue"), ("kv", 6, "KeyValueList")],
    "Resource": [("attrs", 1, "KeyValue", "repeated")],
    "Scope": [("name", 1, S), ("version", 2, S), ("attrs", 3, "KeyValue", "repeated")],
    "Event": [("name", 2, S), ("attrs", 3, "KeyValue", "repeated")],
    "Link": [("ts", 3, S), ("attrs", 4, "KeyValue", "repeated")],
    "Status": [("m", 2, S)],
    "Span": [("ts", 3, S), ("name", 5, S), ("attrs", 9, "KeyValue", "repeated"), ("ev", 11, "Event", "repeated"),
             ("links", 13, "Link", "repeated"), ("status", 15, "Status")],
}  # fmt: skip
VALUE_OPAQUE = {**FULL, "KeyValue": [("k", 1, S), ("v", 2, B)]}
ATTRIBUTES_OPAQUE = {**FULL, "Span": [(*f[:2], B, "repeated") if f[0] == "attrs" else f for f in FULL["Span"]]}
SPANS_OPAQUE = {**FULL, "ScopeSpans": [("scope", 1, "Scope"), ("spans", 2, B, "repeated"), ("url", 3, S)]}

_pool = descriptor_pool.DescriptorPool()


def request_class(package: str, syntax: str, messages: dict[str, list[Field]]) -> Any:
    file = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax=syntax)
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, *repeated in fields:
            label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            if isinstance(kind, str):
                message.field.add(
                    name=field_name, number=number, label=label, type=F.TYPE_MESSAGE, type_name=f".{package}.{kind}"
                )
            else:
                message.field.add(name=field_name, number=number, label=label, type=kind)
    _pool.Add(file)
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{package}.Request"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    body = build_request("traces", [f"svc-{s}" for s in range(10)], 50)
    spans = 500
    cases = {
        "generated classes (what validation parses)": ExportTraceServiceRequest,
        "same schema built at run time": request_class("full", "proto3", FULL),
        "only string and message fields declared": request_class("strings", "proto3", STRINGS_ONLY),
        "proto2 (no UTF-8 checks)": request_class("proto2", "proto2", FULL),
        "KeyValue.value opaque (no AnyValue messages)": request_class("value", "proto3", VALUE_OPAQUE),
        "span attributes opaque": request_class("attributes", "proto3", ATTRIBUTES_OPAQUE),
        "spans opaque (the lite read's depth)": request_class("spans", "proto3", SPANS_OPAQUE),
    }
    print(f"request: {len(body)} bytes, {spans} spans; upb parse, CPU µs per span, median [range] of {args.rounds}")
    for name, cls in cases.items():
        runs = []
        for _ in range(args.rounds):
            started = time.process_time()
            for _ in range(args.requests):
                cls.FromString(body)
            runs.append((time.process_time() - started) / args.requests / spans * 1e6)
        print(f"  {name:45s} {statistics.median(runs):.3f} [{min(runs):.3f}-{max(runs):.3f}]")


if __name__ == "__main__":
    main()

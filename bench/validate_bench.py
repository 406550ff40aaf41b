"""CPU cost of intake validation per span and per request on the reference workload (10 resources x 50 x 11 attrs).

    .venv/bin/python bench/validate_bench.py

Compares, per span, in this process: the lite wire read that routing used before validation
(`parse_records`), the intake's validation (`validate_request`: the strict wire check of every record, plus a
upb parse of each small Resource for the routing attributes), the wire check alone compiled (mypyc, what the
package installs) and interpreted (the same source run by CPython), and upb's full parse alone
(`ExportTraceServiceRequest.FromString`, what validation ran before the wire check; it misses wrong wire types).
Medians [range] of `--rounds` rounds of `--requests` calls each (the interpreted walk: a tenth of them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.route import wirecheck
from sentryroute_forwarder.route.validate import validate_request
from sentryroute_forwarder.route.wire import parse_records, record_bounds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import build_request

SERVICES, SPANS_PER_RESOURCE = 10, 50
SPANS_PER_REQUEST = SERVICES * SPANS_PER_RESOURCE

KEYS = frozenset({"service.name", "k8s.namespace.name"})


def walker(module: Any, body: bytes) -> Callable[[], object]:
    """Every record of `body` walked by `module`'s wire check."""
    schema = module.build_schema([ExportTraceServiceRequest.DESCRIPTOR])
    check = module.RecordCheck(
        schema,
        "opentelemetry.proto.trace.v1.ResourceSpans",
        "opentelemetry.proto.trace.v1.Span",
        "opentelemetry.proto.resource.v1.Resource",
    )
    bounds = record_bounds(memoryview(body))
    return lambda: [check.check(body, start, end) for _, start, end in bounds]


def per_span_us(call: Callable[[], object], *, requests: int, rounds: int) -> list[float]:
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            call()
        results.append((time.process_time() - started) / requests / SPANS_PER_REQUEST * 1e6)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    body = build_request("traces", [f"svc-{s}" for s in range(SERVICES)], SPANS_PER_RESOURCE)
    interpreted = wirecheck.interpreted()
    assert not interpreted.COMPILED
    cases: dict[str, Callable[[], object]] = {
        "lite wire read (routing before validation)": lambda: parse_records(body, keys=KEYS),
        "validate_request (what intake runs now)": lambda: validate_request(Signal.TRACES, body, keys=KEYS),
        f"wire check alone ({'compiled' if wirecheck.COMPILED else 'NOT COMPILED'})": walker(wirecheck, body),
        "wire check alone, interpreted": walker(interpreted, body),
        "upb full parse alone": lambda: ExportTraceServiceRequest.FromString(body),
    }
    print(
        f"request: {len(body)} bytes, {SPANS_PER_REQUEST} spans; CPU µs per span (and per request), "
        f"median [range] of {args.rounds}"
    )
    medians = {}
    for name, call in cases.items():
        requests = max(1, args.requests // 10) if "interpreted" in name else args.requests
        runs = per_span_us(call, requests=requests, rounds=args.rounds)
        medians[name] = statistics.median(runs)
        per_request = medians[name] * SPANS_PER_REQUEST
        print(f"  {name:45s} {medians[name]:.3f} [{min(runs):.3f}-{max(runs):.3f}]  ({per_request:.0f} µs per request)")
    names = list(cases)
    print(f"  validation adds {medians[names[1]] - medians[names[0]]:.3f} µs per span over the lite read")


if __name__ == "__main__":
    main()

"""`PYTHONPATH=. .venv/bin/python bench/peer_cost.py` (through /work/coord/cpu-exclusive on the shared machine).

Micro-benchmark: the cost of --namespace-from peer on the routing path (split + peer lookup), per request.

Same request shape as `make bench` (10 services x 50 spans). Measures split_request in attribute mode, in
peer mode from a pod whose resources carry no namespace claim (the common case: no rewrite), and from a pod
whose resources all carry a false claim (every resource rewritten), plus the peer index lookup itself, and one
routing decision for a value 500 namespaces share (a ClusterSentryRoute namespaceSelector's entries, SPEC §2.1).
Median of 7 rounds of 2,000 requests each, [min-max].
"""

from __future__ import annotations

import statistics
import time

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.peers.index import IndexedPod, PeerIndex
from sentryroute_forwarder.peers.resolver import PeerResolver
from sentryroute_forwarder.route.origin import ATTRIBUTE
from sentryroute_forwarder.route.router import Router
from sentryroute_forwarder.route.split import split_request

from tests.forwarder.support import resource_spans, routes_table, traces_request

SERVICES = [f"svc-{i}" for i in range(10)]
TABLE = routes_table([(s, s, "shop") for s in SERVICES])
PLAIN = traces_request(*(resource_spans(s, spans=50, tag=s) for s in SERVICES)).SerializeToString()
LEDGER = {"service.name": "ledger"}
LYING = traces_request(*(resource_spans(s, namespace="bank", spans=50, tag=s) for s in SERVICES)).SerializeToString()


def rounds(fn, n=2000, k=7):
    out = []
    for _ in range(k):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(out), min(out), max(out)


def main() -> None:
    index = PeerIndex()
    index.replace_all(IndexedPod(f"u{i}", "shop", (f"10.0.{i // 250}.{i % 250}",)) for i in range(5000))
    resolver = PeerResolver(index, metrics=ForwarderMetrics(), wait=1.0)
    loose, strict = Router(TABLE), Router(TABLE, strict=True)
    shared = Router(routes_table([("ledger", "payments", f"ns-{i:03d}") for i in range(500)]), strict=True)
    results = {
        "attribute mode": rounds(lambda: split_request(Signal.TRACES, PLAIN, loose, ATTRIBUTE)),
        "peer mode, no claim": rounds(
            lambda: split_request(Signal.TRACES, PLAIN, strict, resolver.origin_now("10.0.3.7"))
        ),
        "peer mode, every resource lies": rounds(
            lambda: split_request(Signal.TRACES, LYING, strict, resolver.origin_now("10.0.3.7"))
        ),
        "peer lookup alone": rounds(lambda: resolver.origin_now("10.0.3.7"), n=200000),
        "decision, 500 namespaces share it": rounds(lambda: shared.decide(LEDGER, "ns-499"), n=200000),
    }
    base = results["attribute mode"][0]
    for name, (median, low, high) in results.items():
        rel = f" ({(median / base - 1) * 100:+.1f} %)" if not name.startswith(("peer lookup", "decision")) else ""
        print(f"{name:32s} {median:8.2f} µs/request [{low:.2f}-{high:.2f}]{rel}")


if __name__ == "__main__":
    main()

"""`.venv/bin/python bench/store_cost.py` — the queue store's own CPU per span, memory and `--queue-dir`.

Micro-benchmark of what the disk queue adds to the hot path, without the rest of the forwarder around it
(whose noise on a shared VM is larger than the difference): requests shaped like `make bench`'s reference
workload (10 records of 50 spans, 25 KB each, per request) are appended, every fourth request each queue's
batch is peeked and acknowledged (as the exporter does after Sentry answered), `maintain()` runs every 800
requests (about once a second at full speed). Enough requests (4 GB) for segment files to be reused many
times. Reports process CPU µs per span, median [min-max] of 5 interleaved rounds; pin it to one core
(`taskset -c 0`) on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.diskstore import DiskStore
from sentryroute_forwarder.queue.store import MemoryStore, QueueKey, QueueStore, Record

KEYS = [QueueKey.for_project(Signal.TRACES, f"acme/p{i}") for i in range(10)]
SPANS_PER_RECORD = 50
PAYLOADS = [os.urandom(SPANS_PER_RECORD * 500) for _ in KEYS]  # ~500 bytes per span, as the bench's bodies


async def one_round(make: Callable[[Path], QueueStore], requests: int) -> float:
    directory = Path(tempfile.mkdtemp(prefix="store-cost-"))
    store = make(directory)
    store.open()
    seq = 0
    started = time.process_time()
    for n in range(requests):
        now = time.monotonic()
        batch = []
        for key, payload in zip(KEYS, PAYLOADS, strict=True):
            seq += 1
            batch.append(
                (key, Record(seq, Signal.TRACES, payload, SPANS_PER_RECORD, 1, "service.name", key.project, now))
            )
        store.append_all(batch)
        if n % 4 == 3:
            for key in KEYS:
                sent = store.peek(key, max_items=10_000, max_bytes=10 << 20)
                store.ack(key, [record.seq for record in sent])
            await asyncio.sleep(0)  # the event-loop step after which acknowledgements are written
        if n % 800 == 799:
            store.maintain()
    await asyncio.sleep(0)
    spent = time.process_time() - started
    store.close()
    shutil.rmtree(directory)
    return spent * 1e6 / (requests * len(KEYS) * SPANS_PER_RECORD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=16_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stores: dict[str, Callable[[Path], QueueStore]] = {
        "memory": lambda _: MemoryStore(),
        "--queue-dir": lambda path: DiskStore(path, memory_bytes=64 << 20),
    }
    results: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(args.rounds):
        for name, make in stores.items():
            results[name].append(asyncio.run(one_round(make, args.requests)))
    for name, values in results.items():
        print(f"{name:12s} {statistics.median(values):.3f} µs/span [{min(values):.3f}-{max(values):.3f}]")


if __name__ == "__main__":
    main()

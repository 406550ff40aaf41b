"""A batch held as its gzip body while in flight: the rebuild (inflate + slice), and both stores releasing and
giving back their records' payloads with the accounting unchanged."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from isal import igzip
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.compressed import CompressedBatch, inflate_pieces
from sentryroute_forwarder.queue.diskstore import DiskStore
from sentryroute_forwarder.queue.store import MemoryStore, QueueKey, QueueStore, Record

KEY = QueueKey.for_project(Signal.TRACES, "acme/a")


def record(seq: int, payload: bytes) -> Record:
    return Record(seq, Signal.TRACES, payload, 3, 2, "service.name", "a", accepted_at=float(seq), namespace="shop")


def payloads() -> list[bytes]:
    """Pieces of mixed sizes and kinds: one byte, compressible, random (incompressible), and a 300 KB one."""
    return [b"\x0a", b"\x0a\x02\x0a\x00" * 500, os.urandom(5000), bytes(range(256)) * 1200]


def test_inflate_pieces_cuts_the_body_back_into_the_same_bytes() -> None:
    pieces = payloads()
    gzipped = igzip.compress(b"".join(pieces), 1)
    assert inflate_pieces(gzipped, [len(p) for p in pieces]) == pieces
    assert inflate_pieces(igzip.compress(pieces[1], 1), [len(pieces[1])]) == [pieces[1]]
    with pytest.raises(ValueError, match="inflates to"):
        inflate_pieces(gzipped, [len(p) for p in pieces[:-1]])


def test_a_compressed_batch_keeps_metadata_and_rebuilds_equal_records() -> None:
    batch = [record(seq, payload) for seq, payload in enumerate(payloads(), start=1)]
    compressed = CompressedBatch(batch, igzip.compress(b"".join(r.payload for r in batch), 1))
    for held, original in zip(compressed.records, batch, strict=True):
        assert (held.payload, held.released, held.seq) == (b"", len(original.payload), original.seq)
    assert compressed.seqs == [1, 2, 3, 4]
    assert compressed.items == 12
    assert compressed.nbytes == sum(len(r.payload) for r in batch)
    assert compressed.rebuild() == batch  # every field, the payload byte for byte, `released` back to 0
    with pytest.raises(ValueError, match="held"):
        compressed.records[0].restore(b"too long")


def memory_store(_: Path) -> MemoryStore:
    return MemoryStore()


def disk_store(path: Path) -> DiskStore:
    store = DiskStore(path, memory_bytes=1 << 30)
    store.open()
    return store


MakeStore = Callable[[Path], QueueStore]
STORES = pytest.mark.parametrize("make", [memory_store, disk_store], ids=["memory", "disk"])


def released(store: QueueStore, key: QueueKey = KEY) -> list[int]:
    """Seqs of the queued records whose payloads are not in memory."""
    return [r.seq for r in store.records(key, payloads=False) if r.released]


def queued_with_a_batch_in_flight(store: QueueStore) -> tuple[list[Record], CompressedBatch]:
    """Five records queued; the oldest three peeked, compressed and released as the exporter does."""
    originals = [record(seq, payload) for seq, payload in enumerate([*payloads(), b"\x0a\x01x"], start=1)]
    store.append_all((KEY, r) for r in originals)
    batch = store.peek(KEY, max_items=9, max_bytes=1 << 20)
    assert [r.seq for r in batch] == [1, 2, 3]
    compressed = CompressedBatch(batch, igzip.compress(b"".join(r.payload for r in batch), 1))
    store.release(KEY, compressed)
    return originals, compressed


@STORES
def test_released_payloads_leave_memory_but_not_the_accounting(make: MakeStore, tmp_path: Path) -> None:
    store = make(tmp_path)
    originals, _ = queued_with_a_batch_in_flight(store)
    total = sum(len(r.payload) for r in originals)
    assert released(store) == [1, 2, 3]
    assert (store.items(KEY), store.bytes(KEY), store.bytes()) == (15, total, total)
    oldest = store.oldest(KEY)
    assert oldest is not None and oldest.nbytes == len(originals[0].payload)
    # Trimming past the batch in flight (skip) touches neither the batch nor its payloads.
    assert store.drop_oldest(KEY, skip=3) == originals[3]
    assert released(store) == [1, 2, 3]
    assert store.bytes(KEY) == total - len(originals[3].payload)


@STORES
def test_delivered_batch_goes_without_being_rebuilt(make: MakeStore, tmp_path: Path) -> None:
    store = make(tmp_path)
    originals, compressed = queued_with_a_batch_in_flight(store)
    compressed.gzipped = b"not gzip: inflating it would fail"  # so a rebuild cannot go unnoticed
    store.ack(KEY, compressed.seqs)
    assert list(store.records(KEY)) == originals[3:]
    assert (store.items(), store.bytes()) == (6, sum(len(r.payload) for r in originals[3:]))


@STORES
def test_a_refused_batch_gets_its_payloads_back_byte_identical(make: MakeStore, tmp_path: Path) -> None:
    """Retry (peek), re-routing or shutdown (records, take_all) and bisecting (restore) read the same bytes."""
    store = make(tmp_path)
    originals, compressed = queued_with_a_batch_in_flight(store)
    assert store.restore(KEY, compressed) == originals[:3]
    assert store.peek(KEY, max_items=100, max_bytes=1 << 30) == originals
    # In memory they are payloads again; on disk they stay where they are, read back whenever needed.
    assert released(store) == ([] if isinstance(store, MemoryStore) else [1, 2, 3])
    store.release(KEY, compressed)  # sent again, refused again: each way of reading gives them back
    assert list(store.records(KEY)) == originals
    store.release(KEY, compressed)
    assert store.take_all(KEY) == originals
    assert (store.items(), store.bytes()) == (0, 0)


def test_memory_store_partial_acknowledgement_rebuilds_the_rest() -> None:
    """Aged out while held (the oldest record of a batch Sentry refused), the others keep their payloads."""
    store = MemoryStore()
    originals, compressed = queued_with_a_batch_in_flight(store)
    assert store.drop_oldest(KEY) == compressed.records[0]
    assert released(store) == []
    assert list(store.records(KEY)) == originals[1:]
    assert store.bytes() == sum(len(r.payload) for r in originals[1:])


def test_memory_store_splits_a_released_record() -> None:
    store = MemoryStore()
    originals, _ = queued_with_a_batch_in_flight(store)
    halves = [record(10, originals[1].payload[:1000]), record(11, originals[1].payload[1000:])]
    store.replace(KEY, 2, halves)
    assert list(store.records(KEY)) == [originals[0], *halves, *originals[2:]]
    assert store.bytes() == sum(len(r.payload) for r in originals)


def test_disk_store_reads_a_released_batch_back_from_disk(tmp_path: Path) -> None:
    store = disk_store(tmp_path)
    originals, compressed = queued_with_a_batch_in_flight(store)
    compressed.gzipped = b""  # the disk store never needs the body
    assert store.restore(KEY, compressed) == originals[:3]
    assert released(store) == [1, 2, 3]  # read back, not resident again: the next peek reads the disk too
    assert store.peek(KEY, max_items=100, max_bytes=1 << 30) == originals
    store.close()
    again = disk_store(tmp_path)  # and a restart replays them whole
    assert [(r.seq, r.payload) for r in again.records(KEY)] == [(r.seq, r.payload) for r in originals]


def test_memory_store_keeps_the_body_when_a_rebuild_fails() -> None:
    """An inflate that raises (here a truncated body; a MemoryError alike) must leave the batch's body held: the
    records stay released and the next read rebuilds them. Dropping the body first left them released for good,
    and the next peek handed them out with empty payloads, to be sent (and acknowledged) as nothing."""
    store = MemoryStore()
    originals, compressed = queued_with_a_batch_in_flight(store)
    body = compressed.gzipped
    compressed.gzipped = body[: len(body) // 2]
    with pytest.raises(Exception, match=r"(?i)truncated|incomplete|end"):
        store.peek(KEY, max_items=9, max_bytes=1 << 20)
    assert released(store) == [1, 2, 3]
    compressed.gzipped = body
    assert store.peek(KEY, max_items=9, max_bytes=1 << 20) == originals[:3]
    assert list(store.records(KEY)) == originals


def test_memory_store_take_all_keeps_the_queue_when_a_rebuild_fails() -> None:
    """Re-routing or shutdown empties a queue with `take_all`: an inflate that raises must not have taken the
    queue out of the store already (its records gone, the totals still counting them)."""
    store = MemoryStore()
    originals, compressed = queued_with_a_batch_in_flight(store)
    body = compressed.gzipped
    compressed.gzipped = body[: len(body) // 2]
    with pytest.raises(Exception, match=r"(?i)truncated|incomplete|end"):
        store.take_all(KEY)
    assert store.items() == 15
    assert store.queues() == [KEY]
    compressed.gzipped = body
    assert store.take_all(KEY) == originals
    assert (store.items(), store.bytes(), store.queues()) == (0, 0, [])

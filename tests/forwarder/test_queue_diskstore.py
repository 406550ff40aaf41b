"""The disk store (`--queue-dir`) on real files: replay, acknowledgement, payloads beyond memory, torn and corrupt
segments, compaction, a directory in use, a full disk and a read-only one."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.model import Signal
from sentryroute_forwarder.queue.diskstore import DiskStore, QueueDirError, QueueWriteError
from sentryroute_forwarder.queue.segments import ack_name, segment_name
from sentryroute_forwarder.queue.store import QueueKey, Record

KEY = QueueKey.for_project(Signal.TRACES, "acme/a")
HELD = QueueKey.for_hold(Signal.LOGS, "pending", "service.name", "new-svc\u00e9")


def record(seq: int, *, size: int = 100, value: str | None = "a", accepted_at: float = 100.0) -> Record:
    payload = bytes([seq % 251]) * size
    return Record(seq, Signal.TRACES, payload, 2, 1, "service.name", value, accepted_at=accepted_at)


def store_at(path: Path, **options: object) -> DiskStore:
    store = DiskStore(path, memory_bytes=int(options.pop("memory_bytes", 1 << 20)), **options)  # type: ignore[arg-type]
    store.open()
    return store


def seqs(store: DiskStore, key: QueueKey = KEY) -> list[int]:
    return [r.seq for r in store.records(key)]


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("*.seg"))


def test_replay_restores_unacknowledged_records_in_order(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.append_all([(KEY, record(seq)) for seq in range(1, 6)])
    held = Record(6, Signal.LOGS, b"held-payload", 1, 1, "service.name", HELD.value, accepted_at=50.0)
    store.append(HELD, held)
    store.ack(KEY, [2, 4])
    store.close()  # not needed for durability (a kill -9 test shows that); releases the lock

    again = store_at(tmp_path)
    assert seqs(again) == [1, 3, 5]
    assert [r.payload for r in again.records(KEY)] == [record(s).payload for s in (1, 3, 5)]
    assert again.records(HELD).__next__().payload == b"held-payload"
    assert set(again.queues()) == {KEY, HELD}  # the held value's queue, with its non-ASCII value
    assert (again.items(), again.bytes()) == (3 * 2 + 1, 300 + len(b"held-payload"))
    assert again.last_seq() == 6


def test_the_namespace_data_was_routed_by_survives_a_restart(tmp_path: Path) -> None:
    """`--namespace-from peer` re-routes stored data by the namespace it was accepted with (SPEC §6.1)."""
    held = QueueKey.for_hold(Signal.TRACES, "unrouted", "service.name", "svc", "shop")
    store = store_at(tmp_path)
    store.append(held, Record(1, Signal.TRACES, b"p", 1, 1, "service.name", "svc", accepted_at=1.0, namespace="shop"))
    store.append(KEY, Record(2, Signal.TRACES, b"q", 1, 1, "service.name", "svc", accepted_at=1.0, namespace="bank"))
    store.append(KEY, record(3))  # attribute mode: no namespace, the frame format of older forwarders
    store.close()
    again = store_at(tmp_path)
    assert set(again.queues()) == {held, KEY}
    assert [r.namespace for r in again.records(held)] == ["shop"]
    assert [r.namespace for r in again.records(KEY)] == ["bank", None]


def test_acceptance_time_survives_as_wall_clock(tmp_path: Path) -> None:
    import time

    store = store_at(tmp_path)
    store.append(KEY, record(1, accepted_at=time.monotonic() - 30))  # accepted 30 s ago
    store.close()
    age = time.monotonic() - next(store_at(tmp_path).records(KEY)).accepted_at
    assert 29 < age < 35  # hold deadlines count from acceptance across restarts


def test_payloads_beyond_memory_are_read_back_from_disk(tmp_path: Path) -> None:
    store = store_at(tmp_path, memory_bytes=250)
    store.append_all([(KEY, record(seq)) for seq in range(1, 6)])
    resident = [len(r.payload) for r in store.records(KEY, payloads=False)]
    assert resident == [100, 100, 0, 0, 0]  # the first two fit in memory, the rest live on disk only
    assert [r.payload for r in store.peek(KEY, max_items=100, max_bytes=10_000)] == [
        record(s).payload for s in range(1, 6)
    ]
    assert store.bytes(KEY) == 500


def test_a_segment_with_nothing_live_is_deleted_and_sparse_ones_compacted(tmp_path: Path) -> None:
    store = store_at(tmp_path, segment_bytes=1000)
    for seq in range(1, 31):  # ~160-byte frames: several segments
        store.append(KEY, record(seq))
    files = len(segments(tmp_path))
    assert files >= 4
    store.ack(KEY, range(1, 11))
    store.maintain()
    assert len(segments(tmp_path)) < files  # whole segments acknowledged: gone
    # Keep one record in every segment but the newest: each is mostly dead, so it is copied forward.
    store.ack(KEY, [s for s in range(11, 29) if s % 6])
    before = store.footprint()
    store.maintain()
    store.maintain()
    assert store.footprint() < before
    assert seqs(store) == [12, 18, 24, 29, 30]
    store.close()
    assert seqs(store_at(tmp_path)) == [12, 18, 24, 29, 30]  # nothing lost, nothing repeated


def test_a_stuck_record_does_not_pin_the_segment_being_written(tmp_path: Path) -> None:
    store = store_at(tmp_path, segment_bytes=64 * 1024)
    store.append(KEY, record(1))  # stuck: never acknowledged
    for seq in range(2, 200):  # healthy traffic, delivered at once
        store.append(HELD, record(seq, size=200))
        store.ack(HELD, [seq])
    before = store.footprint()
    store.maintain()  # the mostly-delivered segment stops taking writes...
    store.maintain()  # ...and is compacted: the stuck record moves, the dead bytes go...
    assert sum(path.stat().st_size for path in segments(tmp_path)) < before // 10
    assert (tmp_path / "spare").exists()  # ...into the spare file the next segment reuses (still counted)...
    store.maintain(urgent=True)  # ...which goes when room is needed
    assert store.footprint() < before // 10 and not (tmp_path / "spare").exists()
    store.close()
    assert seqs(store_at(tmp_path)) == [1]


def test_a_torn_last_record_is_truncated_and_the_rest_replayed(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.append_all([(KEY, record(seq)) for seq in range(1, 4)])
    store.close()
    last = segments(tmp_path)[-1]
    os.truncate(last, last.stat().st_size - 37)  # the write of record 3 was cut short by a kill
    metrics = ForwarderMetrics()
    again = DiskStore(tmp_path, memory_bytes=1 << 20, metrics=metrics)
    report = again.open()
    assert seqs(again) == [1, 2]
    assert report.torn_bytes > 0 and report.corrupt_bytes == 0
    again.append(KEY, record(4))  # written after the cut, in a new segment
    again.close()
    assert seqs(store_at(tmp_path)) == [1, 2, 4]


def test_a_corrupt_record_is_skipped_counted_and_the_rest_replayed(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.append_all([(KEY, record(seq)) for seq in range(1, 6)])
    store.close()
    path = segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    middle = data.index(bytes([3]) * 100)  # record 3's payload
    data[middle + 10 : middle + 20] = b"\xff" * 10  # bit rot
    path.write_bytes(bytes(data))
    metrics = ForwarderMetrics()
    again = DiskStore(tmp_path, memory_bytes=1 << 20, metrics=metrics)
    report = again.open()
    assert seqs(again) == [1, 2, 4, 5]
    assert report.corrupt_bytes > 0
    assert metrics.registry.get_sample_value("sentryroute_queue_corrupt_bytes_total") == report.corrupt_bytes


def test_a_reused_segment_file_never_replays_its_previous_life(tmp_path: Path) -> None:
    """Released segment files are reused (renamed, overwritten from the start); their old frames stay behind the
    new ones on disk and must never come back, whether they were acknowledged or not when released."""
    store = store_at(tmp_path, segment_bytes=2000)
    store.append_all([(KEY, record(seq, size=400)) for seq in range(1, 6)])  # ~2.3 KB: one full segment
    store.append(KEY, record(6))  # the full segment is retired: a second one takes this record
    first, _ = segments(tmp_path)
    inode = first.stat().st_ino
    store.ack(KEY, range(1, 6))  # the first segment has nothing live: kept as the spare
    assert not first.exists() and (tmp_path / "spare").stat().st_ino == inode
    store.ack(KEY, [6])
    store.maintain()  # the second one too: deleted, there is a spare already
    store.append(KEY, record(7, size=50))  # the next segment reuses the spare's file
    (reused,) = segments(tmp_path)
    assert reused.stat().st_ino == inode and reused.stat().st_size > 1500  # records 1-5 still on disk behind 7
    store.close()
    again = store_at(tmp_path)
    assert seqs(again) == [7]
    assert again.last_seq() == 7
    again.append(KEY, record(8))
    again.close()
    assert seqs(store_at(tmp_path)) == [7, 8]


def test_acknowledgements_survive_in_the_ack_file_and_a_torn_one_only_duplicates(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.append_all([(KEY, record(seq)) for seq in range(1, 6)])
    store.ack(KEY, [1, 2])
    store.ack(KEY, [4])
    store.close()
    (segment,) = segments(tmp_path)
    acks = tmp_path / ack_name(int(segment.stem))
    assert seqs(store_at_released(tmp_path)) == [3, 5]
    os.truncate(acks, acks.stat().st_size - 3)  # the second block was cut short by a crash
    assert seqs(store_at_released(tmp_path)) == [3, 4, 5]  # 4 is sent again: a duplicate, never a loss
    again = store_at(tmp_path)
    again.ack(KEY, [5])  # appended after the valid part of the replayed segment's ack file
    again.close()
    assert seqs(store_at(tmp_path)) == [3, 4]


def store_at_released(path: Path) -> DiskStore:
    store = store_at(path)
    store.close()
    return store


def legacy_frame(seq: int, payload: bytes, *, state: bytes = b"L") -> bytes:
    """A frame as forwarders before segment reuse wrote it (magic SRQ1, no epoch, acknowledged in place)."""
    text = b"".join(struct.pack("<I", len(t)) + t for t in (b"acme/a", b"service.name", b"a"))
    body = struct.pack("<QdIIBB", seq, 1.0e9, 2, 1, 0, 0) + text + payload
    return struct.pack("<4sIIB", b"SRQ1", len(body), zlib.crc32(body), state[0]) + body


def test_segments_of_older_forwarders_are_replayed(tmp_path: Path) -> None:
    (tmp_path / segment_name(3)).write_bytes(
        legacy_frame(1, b"one") + legacy_frame(2, b"two", state=b"D") + legacy_frame(3, b"three")
    )
    store = store_at(tmp_path)
    assert [r.payload for r in store.records(KEY)] == [b"one", b"three"]
    store.ack(KEY, [1])
    store.append(KEY, record(4))  # numbered above what is on disk, in a new segment
    store.close()
    assert seqs(store_at(tmp_path)) == [3, 4]
    assert segment_name(4) in {p.name for p in segments(tmp_path)}


def test_a_split_record_is_replaced_on_disk(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.append_all([(KEY, record(seq)) for seq in (1, 2, 3)])
    store.replace(KEY, 2, [record(10, size=40), record(11, size=60)])
    assert seqs(store) == [1, 10, 11, 3]
    store.close()
    assert seqs(store_at(tmp_path)) == [1, 3, 10, 11]  # replay orders by sequence number; nothing lost


def test_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    store_at(tmp_path)
    with pytest.raises(QueueDirError, match="in use by another forwarder"):
        store_at(tmp_path)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A size-limited (or read-only) tmpfs at `path`: a real ENOSPC / EROFS. Needs root (CI and this machine)."""
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def test_a_full_disk_refuses_new_data_keeps_what_it_has_and_recovers(tmp_path: Path) -> None:
    metrics = ForwarderMetrics()
    with tmpfs(tmp_path / "small", "64k") as path:
        store = DiskStore(path, memory_bytes=1 << 20, metrics=metrics)
        store.open()
        seq = 0
        with pytest.raises(QueueWriteError, match="No space left on device"):
            while True:
                seq += 1
                store.append(KEY, record(seq, size=4000))
        assert store.write_error is not None
        assert metrics.registry.get_sample_value("sentryroute_queue_write_errors_total", {"error": "ENOSPC"}) == 1
        kept = seqs(store)
        assert kept == list(range(1, seq))  # the refused record is not half-written, the others are intact
        store.ack(KEY, kept)  # delivered: their space comes back
        store.maintain()
        store.append(KEY, record(seq + 1, size=4000))
        assert store.write_error is None
        store.close()
        assert seqs(store_at(path)) == [seq + 1]


def test_a_read_only_directory_is_replayed_and_refuses_new_data(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as path:
        store = store_at(path)
        store.append_all([(KEY, record(seq)) for seq in (1, 2)])
        store.close()
        remount(path, "ro")
        again = store_at(path)
        assert seqs(again) == [1, 2]  # what was accepted is still delivered
        assert again.write_error is not None and "Read-only file system" in again.write_error
        with pytest.raises(QueueWriteError, match="Read-only"):
            again.append(KEY, record(3))
        again.ack(KEY, [1])  # cannot be marked on disk: it may be sent again after a restart, never lost
        again.close()
        remount(path, "rw")
        assert seqs(store_at(path)) == [1, 2]


def test_segment_names_sort_numerically() -> None:
    assert segment_name(9) < segment_name(10)

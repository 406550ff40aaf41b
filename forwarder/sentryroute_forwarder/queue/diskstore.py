"""The durable :class:`QueueStore` (`--queue-dir`): an append-only log of segment files, indexed in memory.

- **Accepting** writes every record of a request with one `pwritev` into the page cache before the client is
  answered, so data survives a killed process (kill -9, OOM kill). With `--queue-fsync` the answer also waits
  for an `fsync` that every request written meanwhile shares (group commit), for node crashes.
- **Acknowledging** (delivered or dropped) appends the records' seqs to the segment's ack file: one write per
  segment at the end of the event-loop step (so a re-routed record is written again before its old copy is
  marked done), however many records it covers. A segment with no live record left is released: kept as the
  spare that the next segment reuses (overwriting pages the kernel already has costs far less than new ones;
  frames carry their segment's number, so the previous life's are never replayed), or deleted. A segment less
  than half live is compacted (its live records copied forward) by `maintain()` once it has stopped taking
  writes for a whole `maintain()` period: records that are being delivered anyway are not copied.
- **Memory** holds the index and, up to `memory_bytes` (`--max-bytes`), the payloads; beyond that a record's
  payload stays on disk only and is read back when it is sent. A batch being sent leaves memory too (it is
  held as its gzip body meanwhile): should it be sent again, it is read back from disk.
- **Replay** (`open()`) rebuilds every queue from the live records, oldest first; a torn last frame (a write
  cut short) is truncated, a corrupt stretch skipped and counted, the rest replayed. A crash may duplicate
  (a record sent but not yet marked done), never lose.
- **Reading back** a payload that is on disk only checks its frame as replay does (CRC, length, seq): a record
  whose bytes changed on disk after start is dropped, counted (`queue_corrupt_bytes`,
  `dropped_items{reason="corrupt"}`) and logged, never sent; the rest of its queue flows on.
- **Errors** (disk full, read-only or vanished directory) fail the append with `QueueWriteError` — the
  receivers answer 503 with Retry-After — and never stop delivery of what is queued; writing is retried on
  the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.queue.compressed import CompressedBatch
from sentryroute_forwarder.queue.segments import (
    KIND_HOLD,
    KIND_PROJECT,
    ack_name,
    encode_acks,
    encode_frame,
    iter_segment_numbers,
    read_acks,
    read_back,
    scan,
    segment_name,
)
from sentryroute_forwarder.queue.store import QueueKey, QueueTotals, Record

__all__ = ["DiskStore", "QueueDirError", "QueueWriteError"]

log = logging.getLogger(__name__)

_Chunks = list[bytes]  # (an alias: inside DiskStore, `bytes` is a method)
_IOV_MAX = 512  # buffers per pwritev call (Linux allows 1024)
_COMPACT_BYTES = 16 * 1024 * 1024  # copied forward per maintain() call at most, to keep the loop responsive
SPARE = "spare"  # the released segment file kept for reuse (not a `*.seg` name: never replayed)


class QueueDirError(OSError):
    """The queue directory cannot be used at all (another process holds it)."""


class QueueWriteError(Exception):
    """Accepted data could not be written to the queue directory; the client is told to retry."""


@dataclass(eq=False, slots=True)
class _Segment:
    number: int
    path: Path
    fd: int
    size: int = 0
    entries: dict[int, _Entry] = field(default_factory=dict)  # live records by seq
    live_bytes: int = 0
    reusable: bool = False  # written by this process (epoch frames only): may become the spare
    length: int = 0  # of the file: more than `size` while a reused file still holds its previous life's tail
    ack_fd: int = -1
    ack_size: int = 0
    compact_from: int = 0  # the first maintain() tick that may compact it (a period after it stopped taking writes)

    @property
    def is_open(self) -> bool:
        return self.fd >= 0


@dataclass(eq=False, slots=True)
class _Entry:
    key: QueueKey
    record: Record  # released (payload b"") while it lives on disk only
    nbytes: int
    segment: _Segment
    offset: int
    size: int  # of the frame

    @property
    def resident(self) -> bool:
        return not self.record.released


@dataclass(slots=True)
class _Queue:
    entries: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)
    items: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class ReplayReport:
    items: int
    records: int
    segments: int
    corrupt_bytes: int
    torn_bytes: int


class DiskStore(QueueTotals[_Queue]):
    """See the module docstring. Not thread-safe: used from the event loop only (fsync runs in a thread)."""

    def __init__(
        self,
        directory: Path,
        *,
        memory_bytes: int,
        segment_bytes: int = 64 * 1024 * 1024,
        fsync: bool = False,
        metrics: ForwarderMetrics | None = None,
    ) -> None:
        self.directory = directory
        self._memory_bytes = memory_bytes
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._metrics = metrics
        super().__init__()
        self._resident = self._disk = 0
        self._segments: dict[int, _Segment] = {}  # oldest first
        self._active: _Segment | None = None
        self._next_segment = 1
        self._max_seq = 0
        self._doomed: list[tuple[_Segment, int]] = []  # (segment, seq) to list as acknowledged
        self._flush_scheduled = False
        self._lock_fd = -1
        self._write_error: str | None = None
        self._unsynced: set[_Segment] = set()
        self._dir_unsynced = False
        self._waiters: list[asyncio.Future[None]] = []
        self._syncer: asyncio.Task[None] | None = None
        self._retired: list[int] = []  # fds of deleted segments, closed when no fsync can be using them
        self._spare: tuple[int, int] | None = None  # (fd, file length) of the file the next segment reuses
        self._tick = 0  # maintain() calls

    # -- lifecycle ---------------------------------------------------------------------------------------

    def open(self) -> ReplayReport:
        """Lock the directory, replay its segments, open a new segment to write to."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QueueDirError(exc.errno, f"--queue-dir {self.directory}: {exc.strerror}") from None
        self._lock()
        report = self._replay()
        with contextlib.suppress(QueueWriteError):  # served anyway: replayed data is delivered, clients get 503
            self._open_active()
        self._publish_disk()
        return report

    def close(self) -> None:
        """Mark what was acknowledged, sync (with fsync) and release the directory."""
        self._flush_acks()
        if self._fsync:
            with contextlib.suppress(OSError):
                for segment in self._unsynced:
                    if segment.is_open:
                        os.fsync(segment.fd)
        for segment in self._segments.values():
            if segment.is_open:
                os.close(segment.fd)
                segment.fd = -1
            if segment.ack_fd >= 0:
                os.close(segment.ack_fd)
                segment.ack_fd = -1
        self._drop_spare()
        self._close_retired()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def last_seq(self) -> int:
        """The highest sequence number on disk (new records must be numbered above it)."""
        return self._max_seq

    @property
    def write_error(self) -> str | None:
        """Why the last write failed (None while writing works)."""
        return self._write_error

    def footprint(self) -> int:
        """Bytes the queue directory uses (what `--max-disk-bytes` bounds), the spare file included."""
        return self._disk

    # -- QueueStore --------------------------------------------------------------------------------------

    def append(self, key: QueueKey, record: Record) -> None:
        self.append_all([(key, record)])

    def append_all(self, records: Iterable[tuple[QueueKey, Record]]) -> None:
        """Write every record (one request's parts) with one `pwritev`, then index them; all or none."""
        batch = list(records)
        if not batch:
            return
        segment = self._writable_segment()
        skew = time.time() - time.monotonic()
        buffers: _Chunks = []
        placed: list[tuple[QueueKey, Record, int, int]] = []
        offset = segment.size
        for key, record in batch:
            head, size = _encode(key, record, segment.number, accepted_wall=record.accepted_at + skew)
            buffers += (head, record.payload)
            placed.append((key, record, offset, size))
            offset += size
        self._write(segment, buffers, offset - segment.size)
        for key, record, at, size in placed:
            self._index(key, record, segment, at, size)
            self._max_seq = max(self._max_seq, record.seq)
        self._publish_disk()

    def peek(self, key: QueueKey, *, max_items: int, max_bytes: int) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        batch: list[Record] = []
        corrupt: list[_Entry] = []
        items = nbytes = 0
        for entry in queue.entries.values():
            if batch and (items + entry.record.items > max_items or nbytes + entry.nbytes > max_bytes):
                break
            record = self._load(entry)
            if record is None:
                corrupt.append(entry)
                continue
            batch.append(record)
            items += record.items
            nbytes += entry.nbytes
        self._drop_corrupt(corrupt)
        return batch

    def ack(self, key: QueueKey, seqs: Iterable[int]) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        removed = []
        for seq in seqs:
            entry = queue.entries.pop(seq, None)
            if entry is not None:
                self._forget(queue, entry)
                removed.append(entry.record)
        self._forget_if_empty(key, queue)
        return removed

    def release(self, key: QueueKey, batch: CompressedBatch) -> None:
        """The batch's payloads leave memory: they are on disk (read back if the batch is sent again)."""
        queue = self._queues.get(key)
        if queue is None:
            return
        for record in batch.records:
            entry = queue.entries.get(record.seq)
            if entry is not None and entry.resident:
                self._resident -= entry.nbytes
                entry.record = record

    def restore(self, key: QueueKey, batch: CompressedBatch) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        return self._load_all([entry for r in batch.records if (entry := queue.entries.get(r.seq)) is not None])

    def replace(self, key: QueueKey, seq: int, records: list[Record]) -> None:
        queue = self._queues[key]
        self.append_all((key, record) for record in records)  # the pieces are on disk before the whole is done
        new = [(record.seq, queue.entries.pop(record.seq)) for record in records]
        self._forget(queue, queue.entries.pop(seq))
        rest = list(queue.entries.items())
        position = next((i for i, (s, _) in enumerate(rest) if s > seq), len(rest))
        queue.entries.clear()
        queue.entries.update(rest[:position])
        queue.entries.update(new)
        queue.entries.update(rest[position:])

    def oldest(self, key: QueueKey, *, skip: int = 0) -> Record | None:
        queue = self._queues.get(key)
        if queue is None:
            return None
        for index, entry in enumerate(queue.entries.values()):
            if index >= skip:
                return entry.record
        return None

    def take_all(self, key: QueueKey) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        records = self._load_all(list(queue.entries.values()))
        queue = self._queues.get(key)
        if queue is None:
            return records  # every record was corrupt: the queue is gone already
        for entry in list(queue.entries.values()):
            self._forget(queue, entry)
        queue.entries.clear()
        del self._queues[key]
        return records

    def records(self, key: QueueKey, *, payloads: bool = True) -> Iterator[Record]:
        queue = self._queues.get(key)
        entries = list(queue.entries.values()) if queue is not None else []
        if not payloads:
            return iter([entry.record for entry in entries])
        return iter(self._load_all(entries))

    # -- durability and housekeeping --------------------------------------------------------------------

    def committed(self) -> asyncio.Future[None] | None:
        """With `--queue-fsync`, a future done once everything written so far is fsynced (group commit)."""
        if not self._fsync or not self._unsynced:
            return None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        if self._syncer is None or self._syncer.done():
            self._syncer = loop.create_task(self._sync_loop(), name="sentryroute-queue-fsync")
        return waiter

    def maintain(self, *, urgent: bool = False) -> None:
        """Periodic: list acknowledgements, compact sparse segments, retry a failed directory. `urgent` (room is
        needed now): compact sparse segments however recently they stopped taking writes."""
        self._flush_acks()
        self._tick += 1
        if urgent:
            self._drop_spare()  # room is needed: the spare's space comes back
        active = self._active
        if active is not None and active.size and not active.entries:
            self._active = None  # everything in it was delivered: its space comes back now
            self._release(active)
        elif active is not None and active.size >= self._segment_bytes // 4 and active.live_bytes * 2 < active.size:
            self._retire_active(now=True)  # mostly delivered: a new segment takes the writes, this one gets compacted
        if self._write_error is not None and self._active is None:
            with contextlib.suppress(QueueWriteError):
                self._open_active()
        self._compact(urgent=urgent)
        if self._syncer is None or self._syncer.done():
            self._close_retired()
        self._publish_disk()

    # -- internals: writing ------------------------------------------------------------------------------

    def _writable_segment(self) -> _Segment:
        active = self._active
        if active is not None and active.size >= self._segment_bytes:
            self._retire_active()
            active = None
        if active is None:
            self._open_active()
            active = self._active
        assert active is not None
        return active

    def _open_active(self) -> None:
        number = self._next_segment
        path = self.directory / segment_name(number)
        length = 0
        if self._spare is not None:
            try:
                os.rename(self.directory / SPARE, path)
            except OSError:
                self._drop_spare()  # a new file, then
            else:
                (fd, length), self._spare = self._spare, None
        if not length:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
            except OSError as exc:
                self._failed(exc, f"cannot create {path.name}")
                raise QueueWriteError(self._write_error) from None
        self._next_segment += 1
        segment = _Segment(number, path, fd, reusable=True, length=length)
        self._segments[number] = segment
        self._active = segment
        self._dir_unsynced = True

    def _retire_active(self, *, now: bool = False) -> None:
        """The active segment is full: a new one is opened; this one is released once nothing in it is live."""
        active, self._active = self._active, None
        if active is None:
            return
        # Retired by maintain() (`now`): the next call is a period later; else the one after next is.
        active.compact_from = self._tick + (1 if now else 2)
        if not active.entries:
            self._release(active)
        elif active.length > active.size:  # a reused file: what is left of its previous life goes now
            with contextlib.suppress(OSError):
                os.ftruncate(active.fd, active.size)
                self._disk -= active.length - active.size
                active.length = active.size

    def _write(self, segment: _Segment, buffers: _Chunks, total: int) -> None:
        start = segment.size
        written = 0
        try:
            while written < total:
                done = os.pwritev(segment.fd, _remaining(buffers, written)[:_IOV_MAX], start + written)
                if done <= 0:
                    raise OSError(errno.EIO, "short write")
                written += done
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, start)  # no half-written frame stays behind
                self._disk -= max(0, segment.length - start)
                segment.length = start
            self._failed(exc, f"cannot write to {segment.path.name}")
            if exc.errno != errno.ENOSPC and exc.errno != errno.EDQUOT:
                self._active = None  # the file may be unusable: a new one is tried on the next request
            raise QueueWriteError(self._write_error) from None
        grown = max(0, segment.size + total - segment.length)  # a reused file grows only past its old length
        segment.size += total
        segment.length += grown
        self._disk += grown
        self._unsynced.add(segment)
        if self._write_error is not None:
            log.info("queue directory %s is writable again", self.directory)
            self._write_error = None

    def _failed(self, exc: OSError, what: str) -> None:
        name = errno.errorcode.get(exc.errno or 0, "EIO")
        message = f"queue directory {self.directory}: {what}: {exc.strerror or exc} ({name})"
        if message != self._write_error:
            log.error("%s; clients are answered 503 until it can be written again", message)
        self._write_error = message
        if self._metrics is not None:
            self._metrics.queue_write_errors.labels(name).inc()

    def _index(self, key: QueueKey, record: Record, segment: _Segment, offset: int, size: int) -> None:
        nbytes = record.nbytes
        if self._resident + nbytes > self._memory_bytes:
            record = record.release()  # on disk only: read back when sent
        else:
            self._resident += nbytes
        entry = _Entry(key, record, nbytes, segment, offset, size)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queue.entries[record.seq] = entry
        queue.items += record.items
        queue.bytes += nbytes
        self._items += record.items
        self._bytes += nbytes
        segment.entries[record.seq] = entry
        segment.live_bytes += size

    # -- internals: acknowledging -------------------------------------------------------------------------

    def _forget(self, queue: _Queue, entry: _Entry) -> None:
        record = entry.record
        queue.items -= record.items
        queue.bytes -= entry.nbytes
        self._items -= record.items
        self._bytes -= entry.nbytes
        if entry.resident:
            self._resident -= entry.nbytes
        segment = entry.segment
        if segment.entries.pop(record.seq, None) is not None:
            segment.live_bytes -= entry.size
            self._doomed.append((segment, record.seq))
            self._schedule_flush()

    def _forget_if_empty(self, key: QueueKey, queue: _Queue) -> None:
        if not queue.entries:
            del self._queues[key]

    def _schedule_flush(self) -> None:
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside a loop (tests of the store alone): at once
            self._flush_acks()
            return
        self._flush_scheduled = True
        loop.call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        """List acknowledged records in their segments' ack files; release segments left with nothing live."""
        self._flush_scheduled = False
        doomed, self._doomed = self._doomed, []
        per_segment: dict[_Segment, list[int]] = {}
        for segment, seq in doomed:
            if segment.is_open:
                per_segment.setdefault(segment, []).append(seq)
        emptied = False
        for segment, seqs in per_segment.items():
            if not segment.entries and segment is not self._active:
                self._release(segment)  # released whole: no need to list its records
                emptied = True
                continue
            self._write_acks(segment, seqs)
        if emptied:
            self._publish_disk()

    def _write_acks(self, segment: _Segment, seqs: list[int]) -> None:
        block = encode_acks(seqs)
        try:
            if segment.ack_fd < 0:
                # A replayed segment's ack file is appended to (past its valid part); a new segment's is new.
                fresh = os.O_TRUNC if segment.reusable else 0
                path = self.directory / ack_name(segment.number)
                segment.ack_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | fresh, 0o640)
            os.pwrite(segment.ack_fd, block, segment.ack_size)
        except OSError as exc:  # the records are replayed and sent again after a restart: duplicates
            self._failed(exc, f"cannot list delivered records in {ack_name(segment.number)}")
            return
        segment.ack_size += len(block)

    def _release(self, segment: _Segment) -> None:
        """A segment with nothing live: becomes the spare (when it may be reused and there is none) or goes."""
        if not (segment.reusable and self._spare is None and segment.is_open and self._write_error is None):
            self._delete(segment)
            return
        try:
            os.rename(segment.path, self.directory / SPARE)
        except OSError:
            self._delete(segment)
            return
        self._spare = (segment.fd, segment.length)
        segment.fd = -1
        self._forget_segment(segment)

    def _drop_spare(self) -> None:
        if self._spare is None:
            return
        fd, length = self._spare
        self._spare = None
        self._disk -= length
        with contextlib.suppress(OSError):
            os.unlink(self.directory / SPARE)
        self._retired.append(fd)

    def _delete(self, segment: _Segment) -> None:
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._failed(exc, f"cannot delete {segment.path.name}")
            return
        self._retired.append(segment.fd)
        segment.fd = -1
        self._disk -= segment.length
        self._forget_segment(segment)

    def _forget_segment(self, segment: _Segment) -> None:
        """After its file was deleted or became the spare: its ack file goes."""
        if segment.ack_fd >= 0:
            self._retired.append(segment.ack_fd)
            segment.ack_fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.directory / ack_name(segment.number))
        self._segments.pop(segment.number, None)
        self._unsynced.discard(segment)

    def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for fd in retired:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _compact(self, *, urgent: bool) -> None:
        """Copy the live records of mostly-dead segments forward, then delete those segments."""
        budget = _COMPACT_BYTES
        for segment in list(self._segments.values()):
            if segment is self._active or not segment.is_open:
                continue
            if not segment.entries:
                self._release(segment)
                continue
            if segment.compact_from > self._tick and not urgent:
                continue  # stopped taking writes within the last period: what is live in it is likely being sent
            if segment.live_bytes * 2 >= segment.size or segment.live_bytes > budget:
                continue
            entries = sorted(segment.entries.values(), key=lambda e: e.offset)
            try:
                self._copy_forward(entries)
            except QueueWriteError:
                return
            budget -= segment.live_bytes
            self._release(segment)

    def _copy_forward(self, entries: list[_Entry]) -> None:
        target = self._writable_segment()
        skew = time.time() - time.monotonic()
        buffers: _Chunks = []
        offset = target.size
        moves: list[tuple[_Entry, int, int]] = []
        corrupt: list[_Entry] = []
        for entry in entries:
            record = self._load(entry)
            if record is None:
                corrupt.append(entry)
                continue
            head, size = _encode(entry.key, record, target.number, accepted_wall=record.accepted_at + skew)
            buffers += (head, record.payload)
            moves.append((entry, offset, size))
            offset += size
        if moves:
            self._write(target, buffers, offset - target.size)
        for entry, at, size in moves:
            old = entry.segment
            old.entries.pop(entry.record.seq, None)
            old.live_bytes -= entry.size
            entry.segment, entry.offset, entry.size = target, at, size
            target.entries[entry.record.seq] = entry
            target.live_bytes += size
        self._drop_corrupt(corrupt)

    # -- internals: reading ---------------------------------------------------------------------------------

    def _load(self, entry: _Entry) -> Record | None:
        """The record with its payload (read back from its segment when it is not in memory); None when what is
        on disk is no longer what was written (see `_drop_corrupt`)."""
        if entry.resident:
            return entry.record
        segment = entry.segment
        try:
            data = os.pread(segment.fd, entry.size, entry.offset)
        except OSError:
            return None
        payload = read_back(data, segment.number, entry.record.seq)
        if payload is None or len(payload) != entry.nbytes:
            return None
        return entry.record.restore(bytes(payload))

    def _load_all(self, entries: list[_Entry]) -> list[Record]:
        """The records of `entries` with their payloads; corrupt ones are dropped (`_drop_corrupt`)."""
        records: list[Record] = []
        corrupt: list[_Entry] = []
        for entry in entries:
            record = self._load(entry)
            if record is None:
                corrupt.append(entry)
            else:
                records.append(record)
        self._drop_corrupt(corrupt)
        return records

    def _drop_corrupt(self, entries: list[_Entry]) -> None:
        """Records whose frames no longer read back intact (changed on disk after they were written, or
        unreadable): acknowledged so that they are never sent, counted like replay's corrupt stretches, and
        their items as dropped (`reason="corrupt"`), with a log line each."""
        for entry in entries:
            key, record = entry.key, entry.record
            queue = self._queues.get(key)
            if queue is None or queue.entries.pop(record.seq, None) is None:
                continue
            self._forget(queue, entry)
            self._forget_if_empty(key, queue)
            log.error(
                "queue directory %s: record %d of %s in segment %d (offset %d, %d bytes) is corrupt on disk; "
                "its %d items are dropped, not sent",
                self.directory,
                record.seq,
                key.describe(),
                entry.segment.number,
                entry.offset,
                entry.size,
                record.items,
            )
            if self._metrics is not None:
                self._metrics.queue_corrupt_bytes.inc(entry.size)
                self._metrics.dropped_items.labels(record.signal.value, "corrupt").inc(record.items)

    def _lock(self) -> None:
        path = self.directory / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError:
            fd = -1  # a read-only directory: replayed, but nothing can be written (nor a second writer)
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise QueueDirError(
                    errno.EBUSY, f"--queue-dir {self.directory} is in use by another forwarder process"
                ) from None
        self._lock_fd = fd

    def _replay(self) -> ReplayReport:
        names = os.listdir(self.directory)
        numbers = iter_segment_numbers(iter(names))
        self._next_segment = (numbers[-1] + 1) if numbers else 1
        present = set(numbers)
        for name in names:  # the spare and the ack files of released segments (a crash came in between)
            stem, _, ext = name.partition(".")
            if name == SPARE or (ext == "ack" and stem.isdigit() and int(stem) not in present):
                with contextlib.suppress(OSError):
                    os.unlink(self.directory / name)
        now_wall, now_mono = time.time(), time.monotonic()
        seen: set[int] = set()
        items = records = corrupt = torn = 0
        for position, number in enumerate(numbers):
            path = self.directory / segment_name(number)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # read-only directory: replay anyway
            data = _read_all(fd)
            acked, ack_size = self._read_acks(number)
            result = scan(data, number, acked)
            segment = _Segment(number, path, fd, size=len(data), length=len(data), ack_size=ack_size)
            self._max_seq = max(self._max_seq, result.max_seq)
            self._segments[number] = segment
            if result.stale_at is not None:
                segment.size = result.stale_at  # the rest is a reused file's previous life: not queue data
            elif result.torn_at is not None:
                cut = len(data) - result.torn_at
                if position == len(numbers) - 1:
                    torn += cut
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, result.torn_at)
                        segment.size = segment.length = result.torn_at
                else:
                    corrupt += cut
            corrupt += result.corrupt_bytes
            for frame in result.frames:
                if frame.seq in seen:
                    continue  # copied forward by a compaction that did not finish deleting the old segment
                seen.add(frame.seq)
                if frame.kind == KIND_PROJECT:
                    key = QueueKey.for_project(frame.signal, frame.name)
                else:
                    key = QueueKey.for_hold(frame.signal, frame.name, frame.attribute, frame.value, frame.namespace)
                record = Record(
                    seq=frame.seq,
                    signal=frame.signal,
                    payload=bytes(frame.payload),
                    items=frame.items,
                    resources=frame.resources,
                    attribute=frame.attribute,
                    value=frame.value,
                    accepted_at=now_mono - max(0.0, now_wall - frame.accepted_wall),
                    namespace=frame.namespace,
                )
                self._index(key, record, segment, frame.offset, frame.size)
                self._max_seq = max(self._max_seq, frame.seq)
                items += frame.items
                records += 1
            self._disk += segment.length
        for segment in list(self._segments.values()):
            if not segment.entries:
                self._delete(segment)
        # Replayed records keep their order of acceptance across segments (compaction may have moved some).
        for queue in self._queues.values():
            ordered = sorted(queue.entries.items())
            queue.entries.clear()
            queue.entries.update(ordered)
        if corrupt or torn:
            log.warning(
                "queue directory %s: skipped %d corrupt bytes, truncated a torn write of %d bytes",
                self.directory,
                corrupt,
                torn,
            )
        if self._metrics is not None and corrupt:
            self._metrics.queue_corrupt_bytes.inc(corrupt)
        report = ReplayReport(items, records, len(numbers), corrupt, torn)
        if numbers:
            log.info(
                "queue directory %s: replayed %d items (%d records, %d queues) from %d segments",
                self.directory,
                items,
                records,
                len(self._queues),
                len(numbers),
            )
        return report

    def _read_acks(self, number: int) -> tuple[set[int], int]:
        """The records segment `number` lists as acknowledged, and the length of its ack file's valid part."""
        try:
            with open(self.directory / ack_name(number), "rb") as file:
                return read_acks(file.read())
        except FileNotFoundError:
            return set(), 0

    def _publish_disk(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_disk_bytes.set(self._disk)

    async def _sync_loop(self) -> None:
        """Group commit: one fsync (in a thread) covers every request written before it started."""
        while self._waiters:
            waiters, self._waiters = self._waiters, []
            fds = [segment.fd for segment in self._unsynced if segment.is_open]
            self._unsynced.clear()
            directory = self._dir_unsynced
            self._dir_unsynced = False
            try:
                await asyncio.to_thread(_fsync_all, fds, self.directory if directory else None)
            except OSError as exc:
                self._failed(exc, "fsync failed")
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(QueueWriteError(self._write_error))
                continue
            if self._metrics is not None:
                self._metrics.queue_fsyncs.inc()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


def _encode(key: QueueKey, record: Record, epoch: int, *, accepted_wall: float) -> tuple[bytes, int]:
    if key.project is not None:
        kind, name = KIND_PROJECT, key.project
    else:
        kind, name = KIND_HOLD, key.hold or "unrouted"
    return encode_frame(
        epoch=epoch,
        seq=record.seq,
        accepted_wall=accepted_wall,
        items=record.items,
        resources=record.resources,
        signal=record.signal,
        kind=kind,
        name=name,
        attribute=record.attribute,
        value=record.value,
        payload=record.payload,
        namespace=record.namespace,
    )


def _remaining(buffers: list[bytes], written: int) -> list[bytes | memoryview]:
    """The buffers still to write after `written` bytes (a short write resumes mid-buffer)."""
    if not written:
        return list(buffers)
    out: list[bytes | memoryview] = []
    skipped = 0
    for buffer in buffers:
        if skipped + len(buffer) > written:
            start = max(0, written - skipped)
            out.append(memoryview(buffer)[start:] if start else buffer)
        skipped += len(buffer)
    return out


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 64 * 1024 * 1024), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _fsync_all(fds: list[int], directory: Path | None) -> None:
    for fd in fds:
        os.fdatasync(fd)  # the data and the file size; other metadata (times) need not reach the disk
    if directory is not None:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

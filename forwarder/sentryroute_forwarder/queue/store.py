"""Where accepted data waits: queues of records keyed per project or per held value, one per signal.

The pipeline only talks to the :class:`QueueStore` protocol so that a disk log (`--queue-dir`) can replace
the in-memory store without touching batching, bounds or export. A record is acknowledged by its sequence
number, never by position, so trimming the oldest data while a batch is in flight cannot make an
acknowledgement remove the wrong records.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from sentryroute_forwarder.logs import quoted
from sentryroute_forwarder.model import RoutedPart, Signal

if TYPE_CHECKING:
    from sentryroute_forwarder.queue.compressed import CompressedBatch

__all__ = ["MemoryStore", "QueueKey", "QueueStore", "QueueTotals", "Record"]


@dataclass(frozen=True, slots=True)
class QueueKey:
    """One queue: a project's (``project`` = ``org/slug``) or a held value's (``hold`` = pending | unrouted).

    Queues are per signal because Sentry rate-limits traces and logs separately.
    """

    signal: Signal
    project: str | None = None
    hold: str | None = None
    attribute: str | None = None  # held-value queues: the routing attribute and its value
    value: str | None = None
    namespace: str | None = None  # held-value queues: the namespace it was held for (SPEC §6.1)
    # Keys are looked up in several dicts per part on the hot path: the hash of six fields is computed once.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (self.signal, self.project, self.hold, self.attribute, self.value, self.namespace)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def for_project(cls, signal: Signal, project: str) -> QueueKey:
        """The (shared) key of a project's queue: one object per project and signal, so lookups hit by identity."""
        return _project_key(signal, project)

    @classmethod
    def for_hold(
        cls, signal: Signal, reason: str, attribute: str | None, value: str | None, namespace: str | None = None
    ) -> QueueKey:
        return cls(signal, hold=reason, attribute=attribute, value=value, namespace=namespace)

    @classmethod
    def for_part(cls, part: RoutedPart) -> QueueKey:
        """The queue of a routed part (its destination must not be `drop`)."""
        destination = part.destination
        if destination.kind == "project" and destination.project is not None:
            return cls.for_project(part.signal, destination.project)
        return cls.for_hold(part.signal, destination.reason or "unrouted", part.attribute, part.value, part.namespace)

    def owner(self) -> str:
        """Whose data this queue holds, for log lines; externally supplied values are escaped and cut short."""
        if self.project is not None:
            return f"project {self.project!r}"
        where = "" if self.namespace is None else f" of namespace {quoted(self.namespace)}"
        return f"held {self.hold} value {quoted(self.attribute)}={quoted(self.value)}{where}"

    def describe(self) -> str:
        return f"{self.owner()} ({self.signal.value})"


@functools.lru_cache(maxsize=4096)  # bounded: projects come and go with the table
def _project_key(signal: Signal, project: str) -> QueueKey:
    return QueueKey(signal, project=project)


@dataclass(frozen=True, slots=True)
class Record:
    """Whole resources of one signal accepted together (a `RoutedPart` once it is owned by the queue)."""

    seq: int  # unique and increasing in acceptance order
    signal: Signal
    payload: bytes  # concatenated field-1 records: a valid Export*ServiceRequest body
    items: int
    resources: int
    attribute: str | None
    value: str | None
    accepted_at: float  # time.monotonic() when a receiver accepted it (kept through re-routing and restarts)
    namespace: str | None = None  # the namespace it was routed by (SPEC §6.1), kept through re-routing
    #: > 0: the payload is released (b"": it is held elsewhere, compressed or on disk) and this is its length.
    released: int = 0

    @property
    def nbytes(self) -> int:
        """The payload's length, also while it is released: what every bound, pace and metric counts."""
        return self.released or len(self.payload)

    def release(self) -> Record:
        """This record without its payload (kept where it can be rebuilt from): a copy that keeps its length."""
        # Positional and inline: `dataclasses.replace` costs several times more, and this runs for every record sent.
        return Record(
            self.seq,
            self.signal,
            b"",
            self.items,
            self.resources,
            self.attribute,
            self.value,
            self.accepted_at,
            self.namespace,
            self.released or len(self.payload),
        )

    def restore(self, payload: bytes) -> Record:
        """This released record with its payload again (equal to the record it was released from)."""
        if len(payload) != self.nbytes:
            raise ValueError(f"record {self.seq} held {self.nbytes} bytes, not {len(payload)}")
        return replace(self, payload=payload, released=0)

    @classmethod
    def from_part(cls, part: RoutedPart, *, seq: int, accepted_at: float) -> Record:
        return cls(
            seq=seq,
            signal=part.signal,
            payload=part.payload,
            items=part.items,
            resources=part.resources,
            attribute=part.attribute,
            value=part.value,
            accepted_at=accepted_at,
            namespace=part.namespace,
        )


class QueueStore(Protocol):
    """Ordered queues of records with byte and item accounting per key and in total."""

    def open(self) -> object:
        """Before first use: recover what a previous process left (a disk store replays its log)."""
        ...

    def close(self) -> None:
        """After last use; what is still queued stays where it is (on disk, for the next start)."""
        ...

    def last_seq(self) -> int:
        """The highest sequence number in the store after `open()` (new records are numbered above it)."""
        ...

    def footprint(self) -> int:
        """What the global bound counts: queued bytes in memory, the queue directory's size on disk."""
        ...

    @property
    def write_error(self) -> str | None:
        """Why accepted data cannot be stored right now (the disk is full or read-only), or None."""
        ...

    def append(self, key: QueueKey, record: Record) -> None: ...

    def append_all(self, records: Iterable[tuple[QueueKey, Record]]) -> None:
        """Append one request's records: all of them or, raising, none."""
        ...

    def committed(self) -> asyncio.Future[None] | None:
        """Done once everything appended so far is as durable as configured (None: already is)."""
        ...

    def maintain(self, *, urgent: bool = False) -> None:
        """Periodic housekeeping (compaction, retrying a failed disk); `urgent`: room is needed now, reclaim
        whatever can be reclaimed."""
        ...

    def peek(self, key: QueueKey, *, max_items: int, max_bytes: int) -> list[Record]:
        """The oldest records within both bounds, but always at least one when the queue is not empty."""
        ...

    def release(self, key: QueueKey, batch: CompressedBatch) -> None:
        """`batch` (peeked from `key`) is being sent as its gzip body: its records' payloads may leave memory.

        They stay queued; whatever reads their payloads later (`peek`, `records`, `take_all`, `restore`) gets
        them back, rebuilt from the body or read from disk.
        """
        ...

    def restore(self, key: QueueKey, batch: CompressedBatch) -> list[Record]:
        """The records of a released `batch` that are still queued, with their payloads."""
        ...

    def ack(self, key: QueueKey, seqs: Iterable[int]) -> list[Record]:
        """Remove these records (delivered or dropped); returns those that were still there."""
        ...

    def replace(self, key: QueueKey, seq: int, records: list[Record]) -> None:
        """Put `records` where record `seq` was (splitting a record that Sentry found too large)."""
        ...

    def oldest(self, key: QueueKey, *, skip: int = 0) -> Record | None:
        """The oldest record after the `skip` oldest ones (those of a batch being sent)."""
        ...

    def drop_oldest(self, key: QueueKey, *, skip: int = 0) -> Record | None:
        """Remove and return what `oldest(key, skip=skip)` returns."""
        ...

    def take_all(self, key: QueueKey) -> list[Record]:
        """Empty the queue, returning its records oldest first (for re-routing)."""
        ...

    def records(self, key: QueueKey, *, payloads: bool = True) -> Iterator[Record]:
        """The queue's records, oldest first; with `payloads=False` a payload may be empty (for metadata)."""
        ...

    def queues(self) -> list[QueueKey]:
        """Keys of the non-empty queues."""
        ...

    def queue_count(self) -> int:
        """How many queues are not empty (cheap: asked on every request into a stuck queue)."""
        ...

    def items(self, key: QueueKey | None = None) -> int: ...

    def bytes(self, key: QueueKey | None = None) -> int: ...


class _Counted(Protocol):
    items: int
    bytes: int


Q = TypeVar("Q", bound=_Counted)


class QueueTotals(Generic[Q]):
    """Item and byte totals per queue and overall, and what follows from them alone (both stores share it).

    `_queues` holds the non-empty queues; the store keeps their `items` and `bytes` and the totals current.
    """

    def __init__(self) -> None:
        self._queues: dict[QueueKey, Q] = {}
        self._items = 0
        self._bytes = 0

    def queues(self) -> list[QueueKey]:
        return list(self._queues)

    def queue_count(self) -> int:
        return len(self._queues)

    def items(self, key: QueueKey | None = None) -> int:
        if key is None:
            return self._items
        queue = self._queues.get(key)
        return queue.items if queue is not None else 0

    def bytes(self, key: QueueKey | None = None) -> int:
        if key is None:
            return self._bytes
        queue = self._queues.get(key)
        return queue.bytes if queue is not None else 0

    def oldest(self, key: QueueKey, *, skip: int = 0) -> Record | None:
        raise NotImplementedError

    def ack(self, key: QueueKey, seqs: Iterable[int]) -> list[Record]:
        raise NotImplementedError

    def drop_oldest(self, key: QueueKey, *, skip: int = 0) -> Record | None:
        record = self.oldest(key, skip=skip)
        if record is not None:
            self.ack(key, [record.seq])
        return record


@dataclass(slots=True)
class _Queue:
    records: OrderedDict[int, Record]
    items: int = 0
    bytes: int = 0
    released: CompressedBatch | None = None  # a batch sent from here: its records are held as its gzip body


class MemoryStore(QueueTotals[_Queue]):
    """The in-memory :class:`QueueStore` (the default: no `--queue-dir`)."""

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def last_seq(self) -> int:
        return 0

    def footprint(self) -> int:
        return self._bytes

    @property
    def write_error(self) -> str | None:
        return None

    def committed(self) -> None:
        return None

    def maintain(self, *, urgent: bool = False) -> None:
        pass

    def append_all(self, records: Iterable[tuple[QueueKey, Record]]) -> None:
        for key, record in records:
            self.append(key, record)

    def append(self, key: QueueKey, record: Record) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(OrderedDict())
        queue.records[record.seq] = record
        self._count(queue, record, +1)

    def peek(self, key: QueueKey, *, max_items: int, max_bytes: int) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        if queue.released is not None:
            self._rebuild(queue)
        batch: list[Record] = []
        items = nbytes = 0
        for record in queue.records.values():
            if batch and (items + record.items > max_items or nbytes + len(record.payload) > max_bytes):
                break
            batch.append(record)
            items += record.items
            nbytes += len(record.payload)
        return batch

    def ack(self, key: QueueKey, seqs: Iterable[int]) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        removed = []
        for seq in seqs:
            record = queue.records.pop(seq, None)
            if record is not None:
                self._count(queue, record, -1)
                removed.append(record)
        released = queue.released
        if released is not None and removed and any(r.seq not in queue.records for r in released.records):
            self._rebuild(queue)  # delivered (or dropped): the body goes; what is left of it gets its payloads
        self._forget_if_empty(key, queue)
        return removed

    def release(self, key: QueueKey, batch: CompressedBatch) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return
        if queue.released is not None:
            self._rebuild(queue)  # an earlier batch whose answer never came (its sender was cancelled)
        records = queue.records
        for record in batch.records:
            if record.seq in records:
                records[record.seq] = record  # same key: the order stays
        queue.released = batch

    def restore(self, key: QueueKey, batch: CompressedBatch) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        if queue.released is batch:
            self._rebuild(queue)
        return [queue.records[r.seq] for r in batch.records if r.seq in queue.records]

    def replace(self, key: QueueKey, seq: int, records: list[Record]) -> None:
        queue = self._queues[key]
        if queue.released is not None:
            self._rebuild(queue)
        old = queue.records.pop(seq)
        self._count(queue, old, -1)
        rest = list(queue.records.items())
        # Rare (a 413 answer), so rebuilding the order is cheap enough.
        queue.records.clear()
        position = next((i for i, (s, _) in enumerate(rest) if s > seq), len(rest))
        for record in records:
            self._count(queue, record, +1)
        queue.records.update(rest[:position])
        queue.records.update((r.seq, r) for r in records)
        queue.records.update(rest[position:])
        self._forget_if_empty(key, queue)

    def oldest(self, key: QueueKey, *, skip: int = 0) -> Record | None:
        queue = self._queues.get(key)
        if queue is None:
            return None
        return next(itertools.islice(queue.records.values(), skip, None), None)

    def take_all(self, key: QueueKey) -> list[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return []
        if queue.released is not None:
            self._rebuild(queue)  # before the queue leaves the store: should the inflate raise, it stays
        del self._queues[key]
        self._items -= queue.items
        self._bytes -= queue.bytes
        return list(queue.records.values())

    def records(self, key: QueueKey, *, payloads: bool = True) -> Iterator[Record]:
        queue = self._queues.get(key)
        if queue is None:
            return iter([])
        if payloads and queue.released is not None:
            self._rebuild(queue)
        return iter(list(queue.records.values()))

    def _rebuild(self, queue: _Queue) -> None:
        """Give the released records still queued their payloads back (inflated from the batch's body).

        The body is let go only once the inflate has succeeded: should it raise, the records stay released and
        the next read tries again (never handing out a released record, whose payload is empty)."""
        released = queue.released
        records = queue.records
        if released is not None and any(r.seq in records for r in released.records):
            for record in released.rebuild():
                if record.seq in records:
                    records[record.seq] = record
        queue.released = None

    def _count(self, queue: _Queue, record: Record, sign: int) -> None:
        nbytes = record.nbytes
        queue.items += sign * record.items
        queue.bytes += sign * nbytes
        self._items += sign * record.items
        self._bytes += sign * nbytes

    def _forget_if_empty(self, key: QueueKey, queue: _Queue) -> None:
        if not queue.records:
            del self._queues[key]

"""The on-disk format of the queue log (`--queue-dir`): segment files of framed records, and their ack files.

A segment is a file `<number>.seg` of frames, each one record of one queue::

    magic "SRQ2" | u32 body length | u32 crc32(body) | u8 state | body
    body = u64 epoch | u64 seq | f64 accepted (wall clock) | u32 items | u32 resources | u8 signal | u8 kind
           | name | attribute | value [| namespace]  (each: u32 length, 0xFFFFFFFF for none, UTF-8) | payload

`epoch` is the number of the segment the frame was written as: segment files are reused (renamed to a new
number and overwritten from the start, which costs the kernel far less than a new file), so a frame of another
epoch is what is left of the file's previous life and ends the segment's data. Frames of older forwarders
(magic "SRQ1", no epoch) are read as before; files holding them are never reused.

Acknowledged (delivered or dropped) records are listed in the segment's ack file `<number>.ack`, blocks of
``magic "SRA1" | u32 count | u32 crc32(seqs) | count x u64 seq`` appended once per event-loop step (one write
for many records; a torn or corrupt block and what follows it are ignored: a duplicate is better than a
loss). `state` is the older way to acknowledge (a 1-byte write in place, ``D`` delivered or dropped, anything
else live); it is still honoured when reading. The magic lets a reader find the next frame after a corrupt
one. Acceptance time is wall-clock so that hold deadlines (`--max-hold`) survive a restart; `kind` says
whether `name` is a project (``org/slug``) or the reason of a held value (`pending`, `unrouted`); its bit
`KIND_HAS_NAMESPACE` says a namespace follows the value (the namespace the data was routed by with
`--namespace-from peer`, SPEC §6.1; frames without it are those of attribute mode and of older forwarders).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from isal import isal_zlib  # crc32 about 20x faster than zlib: it is on every accepted byte

from sentryroute_forwarder.model import Signal

__all__ = [
    "HEADER",
    "Frame",
    "ScanResult",
    "ack_name",
    "encode_acks",
    "encode_frame",
    "read_acks",
    "read_back",
    "scan",
    "segment_name",
]

MAGIC = b"SRQ2"
LEGACY_MAGIC = b"SRQ1"  # frames without an epoch (forwarders before segment reuse)
_HEAD = struct.Struct("<4sIIB")  # magic, body length, crc32, state
_EPOCH = struct.Struct("<Q")
_META = struct.Struct("<QdIIBB")  # seq, accepted (wall), items, resources, signal, kind
_ACK_MAGIC = b"SRA1"
_ACK_HEAD = struct.Struct("<4sII")  # magic, count, crc32 of the seqs
_LEN = struct.Struct("<I")
_NONE = 0xFFFFFFFF
HEADER = _HEAD.size
LIVE, DONE = b"L", b"D"
_SIGNALS = (Signal.TRACES, Signal.LOGS)
_SIGNAL_CODES = {signal: code for code, signal in enumerate(_SIGNALS)}
KIND_PROJECT, KIND_HOLD = 0, 1
KIND_HAS_NAMESPACE = 2  # a flag on `kind`
#: Frames longer than this are corruption (a request body is at most a few tens of MiB).
MAX_BODY = 1 << 30


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded live record (its payload a view into the segment's bytes)."""

    offset: int  # of the frame in its segment
    size: int  # of the whole frame
    seq: int
    accepted_wall: float
    items: int
    resources: int
    signal: Signal
    kind: int  # KIND_PROJECT | KIND_HOLD
    name: str
    attribute: str | None
    value: str | None
    payload: memoryview
    namespace: str | None = None


@dataclass(slots=True)
class ScanResult:
    frames: list[Frame]
    done: int  # acknowledged frames skipped
    corrupt_bytes: int  # bytes skipped because they were not a valid frame
    torn_at: int | None  # where an incomplete last frame starts (a write cut short): truncate there
    stale_at: int | None = None  # where the remains of the file's previous life (another epoch) start
    max_seq: int = 0  # the highest seq of any valid frame, acknowledged ones included


_STALE = object()  # a valid frame of another epoch


@functools.lru_cache(maxsize=4096)
def _names(name: str, attribute: str | None, value: str | None, namespace: str | None) -> bytes:
    """The encoded strings of a record (cached: a queue's records mostly share them); the namespace only when
    there is one (flagged in `kind`)."""
    return _text(name) + _text(attribute) + _text(value) + (_text(namespace) if namespace is not None else b"")


def _text(value: str | None) -> bytes:
    if value is None:
        return _LEN.pack(_NONE)
    data = value.encode("utf-8", "surrogatepass")
    return _LEN.pack(len(data)) + data


def encode_frame(
    *,
    epoch: int,
    seq: int,
    accepted_wall: float,
    items: int,
    resources: int,
    signal: Signal,
    kind: int,
    name: str,
    attribute: str | None,
    value: str | None,
    payload: bytes,
    namespace: str | None = None,
) -> tuple[bytes, int]:
    """The frame's head (everything but the payload) and the frame's total size; write head then payload."""
    if namespace is not None:
        kind |= KIND_HAS_NAMESPACE
    meta = (
        _EPOCH.pack(epoch)
        + _META.pack(seq, accepted_wall, items, resources, _SIGNAL_CODES[signal], kind)
        + _names(name, attribute, value, namespace)
    )
    length = len(meta) + len(payload)
    crc = isal_zlib.crc32(payload, isal_zlib.crc32(meta))
    return _HEAD.pack(MAGIC, length, crc, LIVE[0]) + meta, HEADER + length


def _read_text(body: memoryview, at: int) -> tuple[str | None, int]:
    (length,) = _LEN.unpack_from(body, at)
    at += _LEN.size
    if length == _NONE:
        return None, at
    if at + length > len(body):
        raise ValueError("string past the end of the frame")
    return bytes(body[at : at + length]).decode("utf-8", "surrogatepass"), at + length


def _decode(offset: int, size: int, body: memoryview, at: int) -> Frame:
    seq, accepted, items, resources, signal, kind = _META.unpack_from(body, at)
    at += _META.size
    name, at = _read_text(body, at)
    attribute, at = _read_text(body, at)
    value, at = _read_text(body, at)
    namespace = None
    if kind & KIND_HAS_NAMESPACE:
        namespace, at = _read_text(body, at)
        kind &= ~KIND_HAS_NAMESPACE
    if name is None or signal >= len(_SIGNALS) or kind not in (KIND_PROJECT, KIND_HOLD):
        raise ValueError("bad record header")
    return Frame(
        offset,
        size,
        seq,
        accepted,
        items,
        resources,
        _SIGNALS[signal],
        kind,
        name,
        attribute,
        value,
        body[at:],
        namespace,
    )


def _frame_at(data: memoryview, offset: int, epoch: int) -> tuple[Frame, bool, int] | object | None:
    """(frame, acknowledged, frame size) if a valid frame of this epoch starts at `offset`, `_STALE` if one of
    another epoch does, else None."""
    if offset + HEADER > len(data):
        return None
    magic, length, crc, state = _HEAD.unpack_from(data, offset)
    legacy = magic == LEGACY_MAGIC
    if (magic != MAGIC and not legacy) or length > MAX_BODY or offset + HEADER + length > len(data):
        return None
    body = data[offset + HEADER : offset + HEADER + length]
    if isal_zlib.crc32(body) != crc:
        return None
    at = 0
    if not legacy:
        if length < _EPOCH.size:
            return None
        (written_as,) = _EPOCH.unpack_from(body, 0)
        if written_as != epoch:
            return _STALE
        at = _EPOCH.size
    try:
        frame = _decode(offset, HEADER + length, body, at)
    except (ValueError, struct.error, UnicodeDecodeError):
        return None
    return frame, state == DONE[0], HEADER + length


def read_back(data: bytes, epoch: int, seq: int) -> memoryview | None:
    """The payload of record `seq` from its frame as read back whole from segment `epoch` (`data`: exactly the
    frame's bytes), or None when those bytes are not that frame intact (a CRC mismatch, cut short, another's).
    The same checks as replay, so corruption after start is never sent either."""
    found = _frame_at(memoryview(data), 0, epoch)
    if not isinstance(found, tuple):
        return None
    frame, _, size = found
    if size != len(data) or frame.seq != seq:
        return None
    return frame.payload


def scan(data: bytes, epoch: int, acked: frozenset[int] | set[int] = frozenset()) -> ScanResult:
    """Every live frame of segment `epoch`'s bytes (not acknowledged in place nor in `acked`), skipping corrupt
    stretches (resynchronising on the magic).

    An invalid stretch with no valid frame after it is a torn tail (the process died mid-write): it is
    reported as `torn_at`, not as corruption, and the writer truncates the file there. A frame of another
    epoch ends the data (`stale_at`): the rest is what the file held before it was reused.
    """
    view = memoryview(data)
    result = ScanResult([], 0, 0, None)
    offset = 0
    while offset < len(view):
        found = _frame_at(view, offset, epoch)
        if found is _STALE:
            result.stale_at = offset
            break
        if isinstance(found, tuple):
            frame, done, size = found
            result.max_seq = max(result.max_seq, frame.seq)
            if done or frame.seq in acked:
                result.done += 1
            else:
                result.frames.append(frame)
            offset += size
            continue
        resume = _next_frame(view, data, offset + 1, epoch)
        if resume is None:
            result.torn_at = offset
            break
        at, stale = resume
        if stale:  # a frame cut short by the reuse of the file, or torn over the previous life's bytes
            result.stale_at = offset
            break
        result.corrupt_bytes += at - offset
        offset = at
    return result


def _next_frame(view: memoryview, data: bytes, start: int, epoch: int) -> tuple[int, bool] | None:
    """Where the next valid frame starts, and whether it is stale."""
    at = start
    while True:
        candidates = [where for magic in (MAGIC, LEGACY_MAGIC) if (where := data.find(magic, at)) != -1]
        if not candidates:
            return None
        at = min(candidates)
        frame = _frame_at(view, at, epoch)
        if frame is _STALE:
            return at, True
        if frame is not None:
            return at, False
        at += 1


def encode_acks(seqs: list[int]) -> bytes:
    """One block of an ack file: these records are delivered or dropped."""
    body = struct.pack(f"<{len(seqs)}Q", *seqs)
    return _ACK_HEAD.pack(_ACK_MAGIC, len(seqs), isal_zlib.crc32(body)) + body


def read_acks(data: bytes) -> tuple[set[int], int]:
    """The seqs an ack file lists up to its first torn or corrupt block, and where that block starts."""
    acked: set[int] = set()
    offset = 0
    while offset + _ACK_HEAD.size <= len(data):
        magic, count, crc = _ACK_HEAD.unpack_from(data, offset)
        end = offset + _ACK_HEAD.size + 8 * count
        if magic != _ACK_MAGIC or end > len(data):
            break
        body = data[offset + _ACK_HEAD.size : end]
        if isal_zlib.crc32(body) != crc:
            break
        acked.update(struct.unpack(f"<{count}Q", body))
        offset = end
    return acked, offset


def iter_segment_numbers(names: Iterator[str]) -> list[int]:
    """Numbers of the `<number>.seg` files among `names`, in order."""
    numbers = []
    for name in names:
        stem, dot, ext = name.partition(".")
        if dot and ext == "seg" and stem.isdigit():
            numbers.append(int(stem))
    return sorted(numbers)


def segment_name(number: int) -> str:
    return f"{number:012d}.seg"


def ack_name(number: int) -> str:
    return f"{number:012d}.ack"

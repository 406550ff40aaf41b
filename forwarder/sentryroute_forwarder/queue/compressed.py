"""A batch held as the gzip body it is sent as, instead of as its records' payloads.

A batch spends most of its time in flight waiting for Sentry's answer, and OTLP compresses 5-20x: ten lanes
each sending a 1 MiB batch would otherwise keep ~10 MB of payloads alive that the body already holds in ~1 MB.
While the answer is awaited the records stay queued (the answer decides their fate) without their payloads.
When something needs the payloads again (a retry, a split, a re-route, shutdown) they are rebuilt from the
body: it inflates to exactly their concatenation, so slicing it by their lengths gives back the same bytes
without parsing anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from isal import isal_zlib

from sentryroute_forwarder.export.client import GZIP_WBITS
from sentryroute_forwarder.queue.store import Record

__all__ = ["CompressedBatch", "inflate_pieces"]


class CompressedBatch:
    """The records of a batch without their payloads (`Record.released`), and the gzip body that holds them."""

    __slots__ = ("gzipped", "records")

    def __init__(self, batch: Sequence[Record], gzipped: bytes) -> None:
        self.records = [record.release() for record in batch]
        self.gzipped = gzipped

    @property
    def seqs(self) -> list[int]:
        return [record.seq for record in self.records]

    @property
    def items(self) -> int:
        return sum(record.items for record in self.records)

    @property
    def nbytes(self) -> int:
        """The payloads' length (what was queued), not the body's."""
        return sum(record.nbytes for record in self.records)

    def rebuild(self) -> list[Record]:
        """The records with their payloads again, equal to those the batch was made of."""
        pieces = inflate_pieces(self.gzipped, [record.nbytes for record in self.records])
        return [record.restore(piece) for record, piece in zip(self.records, pieces, strict=True)]


def inflate_pieces(gzipped: bytes, lengths: Sequence[int]) -> list[bytes]:
    """Inflate a gzip body and cut it into pieces of `lengths` (which must add up to what it inflates to)."""
    whole = isal_zlib.decompress(gzipped, wbits=GZIP_WBITS, bufsize=max(1, sum(lengths)))
    if len(whole) != sum(lengths):
        raise ValueError(f"a batch body inflates to {len(whole)} bytes, its records hold {sum(lengths)}")
    if len(lengths) == 1:
        return [whole]
    pieces = []
    at = 0
    for length in lengths:
        pieces.append(whole[at : at + length])
        at += length
    return pieces

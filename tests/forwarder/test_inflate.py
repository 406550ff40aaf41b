"""`inflate` and `inflate_within` on real gzip/deflate bodies: the budget of the event loop and the limit."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isal import isal_zlib
from sentryroute_forwarder.receive.inflate import (
    MAX_GZIP_MEMBERS,
    CorruptBody,
    InflatedTooLarge,
    inflate,
    inflate_within,
)

BODY = bytes(range(256)) * 4096  # 1 MiB


@pytest.mark.parametrize(
    "encoding, data",
    [
        ("gzip", gzip.compress(BODY)),
        ("gzip", gzip.compress(BODY[:1000]) + gzip.compress(BODY[1000:])),  # two members
        ("deflate", zlib.compress(BODY)),
        ("deflate", zlib.compress(BODY)[2:-4]),  # raw deflate
    ],
)
def test_a_body_within_the_budget_inflates_and_one_past_it_is_left_to_a_worker(encoding, data):
    assert inflate_within(data, encoding=encoding, limit=2 * len(BODY), budget=len(BODY)) == BODY
    assert inflate_within(data, encoding=encoding, limit=2 * len(BODY), budget=len(BODY) - 1) is None
    assert inflate(data, encoding=encoding, limit=len(BODY)) == BODY


def test_past_the_limit_is_an_error_whatever_the_budget():
    data = gzip.compress(BODY)
    with pytest.raises(InflatedTooLarge):
        inflate_within(data, encoding="gzip", limit=len(BODY) - 1, budget=4 * len(BODY))
    with pytest.raises(InflatedTooLarge):
        inflate(data, encoding="gzip", limit=len(BODY) - 1)


def test_identity_is_the_body_itself():
    assert inflate_within(BODY, encoding="identity", limit=1, budget=1) is BODY


# The first member's output is sized from the gzip trailer's ISIZE, which its sender states (mod 2^32, and only
# the last member's). However it lies, every outcome must be what inflating member by member without any hint
# gives: `_hintless`, on the zlib-style decompressor the receiver used before, each member handed all the rest.


def _hintless(data: bytes, encoding: str, limit: int, cap: int) -> bytes | None:
    """Outcome without a size hint: each member inflates into a buffer grown from 16 KiB, at most `cap` + 1."""
    if encoding == "deflate":
        wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        wbits = 15 if wrapped else -15
    else:
        wbits = 31
    pieces: list[bytes] = []
    rest, members = data, 0
    while True:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise CorruptBody(f"gzip body has more than {MAX_GZIP_MEMBERS} members")
        decompressor = isal_zlib.decompressobj(wbits)
        try:
            pieces.append(decompressor.decompress(rest, cap + 1 - sum(map(len, pieces))))
        except isal_zlib.error:
            raise CorruptBody("compressed body is corrupt") from None
        if sum(map(len, pieces)) > cap:
            if cap < limit:
                return None
            raise InflatedTooLarge(f"inflated body is larger than {limit} bytes")
        if not decompressor.eof:
            raise CorruptBody("compressed body is truncated")
        rest = decompressor.unused_data
        if wbits != 31 or not rest:
            return b"".join(pieces)


def _outcome(inflating: Callable[[], bytes | None]) -> tuple[str, object]:
    try:
        return "inflated", inflating()
    except (CorruptBody, InflatedTooLarge) as exc:
        return type(exc).__name__, str(exc)


def _with_isize(member: bytes, isize: int) -> bytes:
    return member[:-4] + (isize % 2**32).to_bytes(4, "little")


SPANS = b"".join(b"span %d of service %d, attribute http.route=/orders/{id}\n" % (i, i % 10) for i in range(4000))


def _assert_as_without_hint(data: bytes, encoding: str, limit: int, budget: int | None = None) -> None:
    expected = _outcome(lambda: _hintless(data, encoding, limit, limit if budget is None else min(budget, limit)))
    if budget is None:
        assert _outcome(lambda: inflate(data, encoding=encoding, limit=limit)) == expected
    else:
        assert _outcome(lambda: inflate_within(data, encoding=encoding, limit=limit, budget=budget)) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_with_isize(gzip.compress(SPANS), 2**32 - 1), id="says-4-GB"),
        pytest.param(_with_isize(gzip.compress(SPANS), 10), id="says-10-bytes"),
        pytest.param(_with_isize(gzip.compress(SPANS), 0), id="says-nothing"),
        pytest.param(_with_isize(gzip.compress(SPANS), len(SPANS) + 2**32), id="right-mod-2^32"),
        pytest.param(gzip.compress(b"x") + gzip.compress(SPANS), id="small-then-large"),
        pytest.param(gzip.compress(SPANS) + gzip.compress(b"x"), id="large-then-small-says-1"),
        pytest.param(gzip.compress(SPANS) + _with_isize(gzip.compress(b"x"), 2**32 - 1), id="last-member-says-4-GB"),
        pytest.param(gzip.compress(SPANS) + gzip.compress(b"x")[:-8] + b"\xff" * 8, id="last-member-bad-trailer"),
        pytest.param(gzip.compress(SPANS) + b"\x00" * 4 + len(SPANS).to_bytes(4, "little"), id="junk-with-isize"),
        pytest.param(gzip.compress(SPANS) + gzip.compress(SPANS) + gzip.compress(b""), id="three-members"),
        pytest.param(gzip.compress(SPANS)[:-3], id="truncated-trailer"),
        pytest.param(gzip.compress(SPANS)[: len(gzip.compress(SPANS)) // 2], id="truncated-half"),
        pytest.param(gzip.compress(b"\x00" * (4 << 20))[:-4] + b"\x0a\x00\x00\x00", id="bomb-says-10"),
    ],
)
@pytest.mark.parametrize("limit", [len(SPANS) - 1, len(SPANS), 2 * len(SPANS) + 1, 16 << 20])
def test_whatever_the_trailer_says_the_outcome_is_as_without_a_hint(body, limit):
    _assert_as_without_hint(body, "gzip", limit)
    _assert_as_without_hint(body, "gzip", limit, budget=len(SPANS))
    _assert_as_without_hint(body, "gzip", limit, budget=len(SPANS) // 3)


def _peak_bytes(inflating: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(CorruptBody):  # the trailer's ISIZE is checked at the end, and it lies
            inflating()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_trailer_stating_more_than_the_cap_allocates_no_more_than_the_cap():
    """The output buffer is sized from the trailer only up to the cap: 64 KiB here, for a body of 12 KiB."""
    member = gzip.compress(SPANS[:12_000])
    honest = _peak_bytes(lambda: inflate(_with_isize(member, 12_001), encoding="gzip", limit=64 * 1024))
    says_4_gb = _with_isize(member, 2**32 - 1)
    assert _peak_bytes(lambda: inflate(says_4_gb, encoding="gzip", limit=64 * 1024)) < honest + 64 * 1024
    within = _peak_bytes(lambda: inflate_within(says_4_gb, encoding="gzip", limit=1 << 30, budget=64 * 1024))
    assert within < honest + 64 * 1024


@st.composite
def compressed_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """Bodies of one to three members (or one deflate stream), some with a lying trailer, truncated, flipped
    or followed by junk."""
    encoding = draw(st.sampled_from(["gzip", "gzip", "deflate", "raw-deflate"]))
    payloads = draw(st.lists(st.integers(0, len(SPANS)).map(lambda n: SPANS[:n]), min_size=1, max_size=3))
    if encoding == "gzip":
        members = [gzip.compress(payload, mtime=0) for payload in payloads]
        lie = draw(st.sampled_from([None, 0, 1, 10, 2**32 - 1, "+1", "-1", "other"]))
        if lie is not None:
            last = len(payloads[-1])
            isize = {"+1": last + 1, "-1": last - 1, "other": len(payloads[0]) * 2}.get(lie, lie)
            members[-1] = _with_isize(members[-1], isize)
        data = b"".join(members)
    else:
        data = zlib.compress(payloads[0])
        encoding, data = ("deflate", data) if encoding == "deflate" else ("deflate", data[2:-4])
    mangle = draw(st.sampled_from([None, "truncate", "flip", "junk"]))
    if mangle == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif mangle == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif mangle == "junk":
        data += draw(st.sampled_from([b"\x1f\x8b\x08", b"", b"\x00" * 7])) + draw(st.binary(max_size=24))
    return encoding, data


@settings(max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=compressed_bodies(), limit=st.integers(1, 3 * len(SPANS)), budget=st.integers(1, 3 * len(SPANS)))
def test_any_body_inflates_as_without_a_hint(body, limit, budget):
    encoding, data = body
    _assert_as_without_hint(data, encoding, limit)
    _assert_as_without_hint(data, encoding, limit, budget=budget)

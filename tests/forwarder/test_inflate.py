"""`inflate` and `inflate_within` on real gzip/deflate bodies: the budget of the event loop and the limit."""

from __future__ import annotations

import gzip
import zlib

import pytest
from sentryroute_forwarder.receive.inflate import InflatedTooLarge, inflate, inflate_within

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

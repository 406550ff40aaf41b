"""`google.rpc.Status` error bodies (OTLP/HTTP) and details (OTLP/gRPC), with the retry hint clients honour."""

from __future__ import annotations

import math
import random

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

__all__ = ["CODE_FOR_HTTP", "MAX_RETRY_HINT", "build_status", "retry_hint"]

#: Longest retry hint given to clients, seconds.
MAX_RETRY_HINT = 60.0

#: The google.rpc.Code carried in an HTTP error body, by HTTP status.
CODE_FOR_HTTP = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    408: code_pb2.DEADLINE_EXCEEDED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def build_status(code: int, message: str, *, retry_after: float | None = None) -> status_pb2.Status:
    """A Status; with `retry_after`, a RetryInfo detail (OTLP gRPC clients retry only when it is present)."""
    status = status_pb2.Status(code=code, message=message)
    if retry_after is not None:
        seconds = math.floor(retry_after)
        delay = duration_pb2.Duration(seconds=seconds, nanos=int((retry_after - seconds) * 1e9))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(detail)
    return status


def retry_hint(estimate: float | None, floor: float, *, rng: random.Random | None = None) -> float:
    """The delay a refused client is told: the queue's estimate (at least `floor`, `--retry-after`), plus up
    to 50 % jitter so that clients refused together do not all come back in the same second."""
    base = min(MAX_RETRY_HINT, max(floor, estimate if estimate is not None else floor))
    return base * (rng or random).uniform(1.0, 1.5)

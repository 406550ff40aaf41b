"""What one export request's answer means for the batch (SPEC §6 "Responses").

The sender posts a batch and classifies the answer; the queue acts on the verdict (acknowledge, wait, back
off, split, hold or drop). `X-Sentry-Rate-Limits` is read from every answer, whatever its status.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sentryroute_forwarder.export.client import Body, ExportClient, TransportError, UpstreamAnswer
from sentryroute_forwarder.export.ratelimit import QuotaLimit, limits_from_response
from sentryroute_forwarder.model import Signal

__all__ = ["Outcome", "Sender", "Verdict", "classify", "excerpt"]

_EXCERPT_CHARS = 200
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_SENTRY_KEY = re.compile(r"(sentry_key|sentry_secret)=[^,\s&\"']*", re.IGNORECASE)


class Verdict(enum.StrEnum):
    DELIVERED = "delivered"  # 2xx: acknowledge; never send again
    RATE_LIMITED = "rate_limited"  # 429: keep, send after the deadline
    RETRY = "retry"  # 5xx, 408, 3xx, timeouts, connection errors: keep, back off
    TOO_LARGE = "too_large"  # 413: split and retry
    UNDECODABLE = "undecodable"  # 400: bisect to isolate what Sentry cannot decode, deliver the rest
    HOLD = "hold"  # 401 / 403: Sentry refuses this project's key or id; keep until a table changes them
    REJECTED = "rejected"  # other 4xx: drop


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    status: int | None  # None when no HTTP answer arrived
    limits: tuple[QuotaLimit, ...] = ()
    hold_reason: str | None = None  # project_id | unauthorized | forbidden
    detail: str = ""  # sanitised excerpt of the answer or the transport error, for logs


def excerpt(body: bytes | str, *, secrets: tuple[str, ...] = ()) -> str:
    """A short printable excerpt for a log line: no control characters, no keys."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = _SENTRY_KEY.sub(r"\1=<redacted>", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    text = _UNPRINTABLE.sub(" ", text).strip()
    return text[:_EXCERPT_CHARS] + ("…" if len(text) > _EXCERPT_CHARS else "")


def classify(answer: UpstreamAnswer, *, sent: Signal, default_rate_limit: float, public_key: str = "") -> Outcome:
    status = answer.status
    limits = tuple(limits_from_response(status, answer.headers, sent=sent, default=default_rate_limit))
    detail = excerpt(answer.body, secrets=(public_key,))
    if 200 <= status < 300:
        return Outcome(Verdict.DELIVERED, status, limits)
    if status == 429:
        return Outcome(Verdict.RATE_LIMITED, status, limits, detail=detail)
    if status == 413:
        return Outcome(Verdict.TOO_LARGE, status, limits, detail=detail)
    if status == 400:
        return Outcome(Verdict.UNDECODABLE, status, limits, detail=detail)
    if status == 401:
        return Outcome(Verdict.HOLD, status, limits, hold_reason="unauthorized", detail=detail)
    if status == 403:
        reason = "project_id" if b"ProjectId" in answer.body else "forbidden"
        return Outcome(Verdict.HOLD, status, limits, hold_reason=reason, detail=detail)
    if status >= 500 or status == 408 or 300 <= status < 400:
        # A redirect is not followed (the key would go along); kept and retried, so a fixed table delivers it.
        return Outcome(Verdict.RETRY, status, limits, detail=detail)
    return Outcome(Verdict.REJECTED, status, limits, detail=detail)


class Sender:
    """Posts one batch to a project's ingest URL and returns the verdict; never raises for upstream failures."""

    def __init__(self, client: ExportClient, *, default_rate_limit: float) -> None:
        self._client = client
        self._default_rate_limit = default_rate_limit

    async def compress(self, body: Body) -> bytes:
        """The gzip body `send` takes (made first, so that a batch is held compressed while it is in flight)."""
        return await self._client.compress(body)

    async def send(self, *, url: str, public_key: str, gzipped: bytes, signal: Signal) -> Outcome:
        """Post a body `compress` made."""
        try:
            answer = await self._client.post_gzipped(url, public_key=public_key, gzipped=gzipped)
        except TransportError as exc:
            return Outcome(Verdict.RETRY, None, detail=excerpt(str(exc), secrets=(public_key,)))
        return classify(answer, sent=signal, default_rate_limit=self._default_rate_limit, public_key=public_key)

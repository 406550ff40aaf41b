"""Relay's OTLP/HTTP ingest endpoints: auth, content checks, size limit, quotas, 202 and the record.

The order of checks follows Relay: request meta (401/400), content type (415), body (413), project
config (403), cached rate limits (429), queueing (503), then an empty 202. Payloads are decoded after the
decision, and undecodable ones are counted as invalid instead of rejected, as Relay does asynchronously.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from sentryroute.emulator.context import CONTEXT_KEY, Context
from sentryroute.emulator.faults import RateLimit
from sentryroute.emulator.ingest.auth import IngestAuthError, public_key
from sentryroute.emulator.ingest.body import CHUNK, DECODERS, BodyTooLarge, CorruptBody, read_body
from sentryroute.emulator.ingest.otlp_decode import InvalidPayload, decode_logs, decode_traces
from sentryroute.emulator.received import IngestRequest

CONTENT_TYPES = {"application/x-protobuf": False, "application/json": True}  # → is JSON
QUOTA_DETAIL = (
    "Sentry dropped data due to a quota or internal rate limit being reached. This will not affect your "
    "application. See https://docs.sentry.io/product/accounts/quotas/ for more information."
)
SIZE_DETAIL = (
    "envelope exceeded size limits for type 'integration' (https://develop.sentry.dev/sdk/envelopes/#size-limits)"
)
FAILURE_DETAILS = {503: "failed to queue envelope", 500: "internal server error", 400: "invalid request"}


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


def _rate_limited(limits: list[RateLimit]) -> web.Response:
    now = time.monotonic()
    headers = {"X-Sentry-Rate-Limits": ", ".join(limit.header_item(now) for limit in limits)}
    if any(limit.retry_after_header for limit in limits):
        headers["Retry-After"] = str(max(limit.seconds_left(now) for limit in limits))
    return _detail(429, QUOTA_DETAIL, headers)


def _announced_limits(ctx: Context, project_id: str, signal: str) -> dict[str, str]:
    """Quotas announced on a success ("may appear in any response, even 200"), from `enforce=False` limits."""
    limits = ctx.faults.active_rate_limits(project_id, signal=signal)
    now = time.monotonic()
    return {"X-Sentry-Rate-Limits": ", ".join(limit.header_item(now) for limit in limits)} if limits else {}


class _Answer(Exception):
    """Stops processing with this response; `outcome` says why, for the request record."""

    def __init__(self, response: web.Response, outcome: str) -> None:
        super().__init__(outcome)
        self.response = response
        self.outcome = outcome


class IngestHandler:
    def __init__(self, signal: str) -> None:
        self.signal = signal

    async def handle(self, request: web.Request) -> web.Response:
        ctx = request.app[CONTEXT_KEY]
        project_id = request.match_info["project_id"]
        key: str | None = None
        raw_size = 0
        body = b""
        try:
            delay = ctx.faults.ingest_delay(project_id)
            if delay:
                await asyncio.sleep(delay)
            # Until a test or the control API lifts it; polled: the Python API may be called from any thread.
            while ctx.faults.stalled(project_id):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            key = self._authenticate(request, project_id)
            body, raw_size = await self._read(request, ctx)
            outcome = self._admit(ctx, project_id, key)
            if outcome == "accepted":
                outcome = self._record(ctx, project_id, body, is_json=CONTENT_TYPES[request.content_type])
                if outcome == "invalid" and ctx.config.reject_undecodable:
                    raise _Answer(_detail(400, "invalid request: the payload does not decode"), "invalid")
            response = web.Response(status=202, headers=_announced_limits(ctx, project_id, self.signal))
        except _Answer as answer:
            response, outcome = answer.response, answer.outcome
        ctx.received.add_request(
            IngestRequest(
                project_id=project_id,
                signal=self.signal,
                path=request.path,
                status=response.status,
                content_type=request.headers.get("Content-Type", ""),
                content_encoding=request.headers.get("Content-Encoding", ""),
                raw_size=raw_size or request.content_length or 0,
                public_key=key,
                time=time.monotonic(),
                outcome=outcome,
                body=body if ctx.config.keep_bodies else b"",
            )
        )
        return response

    @staticmethod
    def _authenticate(request: web.Request, project_id: str) -> str:
        try:
            key = public_key(request.headers, request.query)
        except IngestAuthError as exc:
            raise _Answer(_detail(exc.status, exc.detail), "auth") from exc
        if not project_id.isdigit():
            raise _Answer(_detail(400, "bad project path"), "bad_project")
        return key

    @staticmethod
    async def _read(request: web.Request, ctx: Context) -> tuple[bytes, int]:
        raw_type = request.headers.get("Content-Type", "").strip().lower()
        type_ok = raw_type in CONTENT_TYPES if ctx.config.strict_content_type else request.content_type in CONTENT_TYPES
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if not type_ok or encoding not in DECODERS:
            raise _Answer(web.Response(status=415), "unsupported_media_type")
        try:
            return await read_body(
                request.content.iter_chunked(CHUNK), wbits=DECODERS[encoding], limit=ctx.config.body_limit
            )
        except BodyTooLarge as exc:
            raise _Answer(_detail(413, SIZE_DETAIL), "too_large") from exc
        except CorruptBody as exc:
            raise _Answer(_detail(400, f"failed to read request body: {exc}"), "corrupt_body") from exc

    def _admit(self, ctx: Context, project_id: str, key: str) -> str:
        """Project config, quotas and queueing; returns "accepted" or "dropped", or raises the rejection."""
        with ctx.state.lock:
            key_obj = ctx.state.keys.get(key)
            if ctx.faults.drops(project_id) or (
                key_obj and time.monotonic() - key_obj.created_monotonic < ctx.config.new_key_drop_seconds
            ):
                return "dropped"  # the project config is "not cached yet": Relay accepts and drops later
            project = ctx.state.projects_by_id.get(project_id)
            valid = bool(
                key_obj and key_obj.is_active and key_obj.project_id == project_id and project and project.is_active
            )
        if not valid:
            raise _Answer(_detail(403, "event submission rejected with_reason: ProjectId"), "rejected")
        limits = ctx.faults.active_rate_limits(project_id, signal=self.signal)
        if any(limit.enforced for limit in limits):
            raise _Answer(_rate_limited(limits), "rate_limited")
        if ctx.faults.take_bare_rate_limit(project_id):
            raise _Answer(_detail(429, QUOTA_DETAIL), "rate_limited")
        status = ctx.faults.take_failure(project_id)
        if status is not None:
            raise _Answer(_detail(status, FAILURE_DETAILS.get(status, "injected failure")), "failed")
        return "accepted"

    def _record(self, ctx: Context, project_id: str, body: bytes, *, is_json: bool) -> str:
        try:
            if self.signal == "traces":
                ctx.received.add_spans(project_id, decode_traces(body, is_json=is_json))
            else:
                ctx.received.add_logs(project_id, decode_logs(body, is_json=is_json))
        except InvalidPayload:
            return "invalid"
        return "accepted"

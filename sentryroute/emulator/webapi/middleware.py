"""The Web API middleware: Sentry's rate-limit headers on every response, injected faults, DRF-style errors."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from sentryroute.emulator.context import CONTEXT_KEY, Context
from sentryroute.emulator.webapi.errors import NOT_FOUND, ApiError
from sentryroute.emulator.webapi.rate_limits import Decision, FixedWindowLimiter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _rate_limit(
    ctx: Context, request: web.Request, limiter: FixedWindowLimiter
) -> tuple[Decision | None, web.Response | None]:
    """Sentry's per-(endpoint, caller) fixed window, or an injected 429; the 429 response when limited.

    Project-key endpoints have Sentry's own 40 requests per second.
    """
    resource = request.match_info.route.resource
    endpoint = f"{request.method} {resource.canonical if resource else request.path}"
    limit, window = ctx.config.api_rate_limit, ctx.config.api_rate_window
    if endpoint.endswith("/keys/"):
        limit, window = ctx.config.keys_rate_limit, 1.0
    reset_in = ctx.faults.take_api_rate_limit(request.path)
    if reset_in is not None:
        injected = Decision(
            allowed=False, limit=limit, remaining=0, reset=math.ceil(time.time() + reset_in), window=window
        )
        return None, web.json_response({"detail": injected.detail()}, status=429, headers=injected.headers())
    if not ctx.config.api_rate_limits:
        return None, None
    caller = request.headers.get("Authorization") or request.remote or ""
    decision = limiter.hit(endpoint, caller, limit=limit, window=window)
    if not decision.allowed:
        return decision, web.json_response({"detail": decision.detail()}, status=429, headers=decision.headers())
    return decision, None


async def _handle(ctx: Context, request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response, with `ApiError`s, injected failures and router errors as DRF-style JSON."""
    failure = ctx.faults.take_api_failure(request.path)
    try:
        if failure is not None:
            status, answer_lost = failure
            if answer_lost:
                with contextlib.suppress(ApiError, web.HTTPException):
                    await handler(request)  # done (or refused), but the client never learns it
            raise ApiError(status, "Internal Error" if status >= 500 else "Injected failure")
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body, status=exc.status)
    except web.HTTPNotFound:
        return web.json_response({"detail": NOT_FOUND}, status=404)
    except web.HTTPMethodNotAllowed as exc:
        return web.json_response({"detail": f'Method "{exc.method}" not allowed.'}, status=405)


def middlewares(prefix: str) -> list[Middleware]:
    api_root = f"{prefix}/api/0/"
    limiter = FixedWindowLimiter()

    @web.middleware
    async def web_api(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(api_root):
            return await handler(request)
        ctx = request.app[CONTEXT_KEY]
        decision, limited = _rate_limit(ctx, request, limiter)
        if limited is not None:
            return limited
        response = await _handle(ctx, request, handler)
        if decision is not None:  # Sentry sends the headers on every response of a limited endpoint
            response.headers.update(decision.headers())
        return response

    return [web_api]

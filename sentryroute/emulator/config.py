"""Settings of the Sentry emulator: the knobs that let tests reach every behaviour of real Sentry.

Defaults mimic current sentry.io; the legacy knobs (`max_slug_length=50`, `omit_otlp_dsn`, `path_prefix`)
mimic older or sub-path self-hosted installations (docs/sentry-facts.md).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass
class EmulatorConfig:
    # Link-header pagination page size (Sentry: 100). Tests use 2 to force multi-page walks.
    page_size: int = 100
    # Project slug limit: 100 since Oct 2024, 50 on older self-hosted instances.
    max_slug_length: int = 100
    # Ingest 413 above this many bytes, measured after decompression.
    body_limit: int = 10 * MIB
    # Old self-hosted: keys' `dsn` has no `otlp_traces`/`otlp_logs`.
    omit_otlp_dsn: bool = False
    # Self-hosted under a sub-path, e.g. "/sentry": everything is served under it and DSNs carry it.
    path_prefix: str = ""
    # Answer 400 to payloads that do not decode (a strict OTLP receiver); Relay answers 202 and drops them.
    reject_undecodable: bool = False
    # Reject `Content-Type` values with parameters (`application/json; charset=utf-8`), as Relay may.
    strict_content_type: bool = False
    # host[:port] written into DSNs; default the listening host:port (the request's Host on a wildcard address).
    public_host: str | None = None
    # Web API fixed-window limiter: requests per window per (endpoint, caller). Generous by default.
    # `api_rate_limits=False` mimics self-hosted Sentry: no limiter and no X-Sentry-Rate-Limit-* headers.
    api_rate_limits: bool = True
    api_rate_limit: int = 1000
    api_rate_window: float = 1.0
    # The project-keys endpoints' own limit (40 requests / 1 s in Sentry's code).
    keys_rate_limit: int = 40
    # Seconds a brand-new key's data is answered 202 and dropped, as while Relay's project config propagates.
    new_key_drop_seconds: float = 0.0
    # Decoded spans/logs kept per project and signal; beyond it items are only counted (long perf runs).
    record_limit: int = 100_000
    # Keep each ingest request's body (decompressed) in its record, for byte-level checks in tests.
    keep_bodies: bool = False
    # Org flag `disable_member_project_creation`: creating a project then needs org:write/org:admin.
    disable_member_project_creation: bool = False

    def __post_init__(self) -> None:
        prefix = self.path_prefix.strip()
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        self.path_prefix = prefix.rstrip("/")
        if self.page_size < 1 or self.page_size > 100:
            raise ValueError("page_size must be between 1 and 100")

"""The receivers' listeners, TLS, authentication and request limits (SPEC §6), declared once (see `options`)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import model_validator

from sentryroute_forwarder.options import (
    Bytes,
    FilePath,
    ListenAddress,
    Seconds,
    SettingsGroup,
    Text,
    option,
    whole_number,
)

__all__ = ["ReceiverSettings"]


class ReceiverSettings(SettingsGroup):
    title = "receivers"

    otlp_http: ListenAddress = option("0.0.0.0:4318", "OTLP/HTTP listener")
    otlp_grpc: ListenAddress = option("0.0.0.0:4317", "OTLP/gRPC listener")
    tls_cert: FilePath | None = option(None, "TLS certificate (PEM) for both receivers; reloaded on change")
    tls_key: FilePath | None = option(None, "TLS private key (PEM) for --tls-cert")
    client_ca: FilePath | None = option(None, "CA bundle (PEM): require client certificates signed by it (mTLS)")
    auth_token_file: FilePath | None = option(
        None, "require 'Authorization: Bearer <token>' with the token in this file"
    )
    max_request_bytes: Bytes = option("16MiB", "largest request body, before and after inflating")
    read_timeout: Seconds = option(
        "30s",
        "longest a client may take to send headers or a body; also how long an idle connection stays open "
        "(both receivers)",
    )
    retry_after: Seconds = option("1s", "Retry-After given to clients answered 503 or 429")
    max_connections: Annotated[int, Text("N", whole_number(1, 1_000_000)), Ge(1), Le(1_000_000)] = option(
        "4096", "most open client connections per receiver; more are answered 503 (HTTP) or refused (gRPC)"
    )
    max_concurrent_requests: Annotated[int, Text("N", whole_number(1, 100_000)), Ge(1), Le(100_000)] = option(
        "128", "most HTTP requests in progress; more are answered 429"
    )
    grpc_max_concurrent_requests: Annotated[int, Text("N", whole_number(1, 100_000)), Ge(1), Le(100_000)] = option(
        "64",
        "most gRPC requests in progress (more: RESOURCE_EXHAUSTED with a retry hint, before their message is "
        "read); each holds its whole message, so this times --max-request-bytes bounds their memory",
    )
    max_connection_age: Seconds = option(
        "10m", "gRPC connections are asked to reconnect (GOAWAY) after this long, spreading clients over replicas"
    )
    max_json_bytes: Bytes = option(
        "4MiB",
        "largest OTLP/JSON body (after inflating): parsing JSON holds Python's lock, ~30 ms per MiB, so larger "
        "bodies would stall the receivers even on a decode worker",
    )
    decode_workers: Annotated[int, Text("N", whole_number(1, 64)), Ge(1), Le(64)] = option(
        "2", "threads that inflate and parse large or compressed bodies and OTLP/JSON off the event loop"
    )

    @model_validator(mode="after")
    def _tls_files_together(self) -> ReceiverSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key must be given together")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValueError("--client-ca needs --tls-cert and --tls-key")
        return self

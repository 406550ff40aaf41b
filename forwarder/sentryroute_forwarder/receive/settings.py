"""The receivers' listeners, TLS, authentication and request limits (SPEC §6), declared once (see `options`)."""

from __future__ import annotations

from pydantic import model_validator

from sentryroute_forwarder.options import Bytes, FilePath, ListenAddress, Seconds, SettingsGroup, option

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
        "30s", "longest a client may take to send headers or a body; also how long an idle connection stays open"
    )
    retry_after: Seconds = option("1s", "Retry-After given to clients answered 503 or 429")

    @model_validator(mode="after")
    def _tls_files_together(self) -> ReceiverSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key must be given together")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValueError("--client-ca needs --tls-cert and --tls-key")
        return self

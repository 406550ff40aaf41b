"""TLS and mTLS for both receivers, with the certificate files reloaded when they change.

Kubernetes rotates mounted Secrets by swapping a symlink, so the files are compared by the stat of their
targets, at most once per `check_interval`, when a new connection arrives: OTLP/HTTP and admin connections get the
new `SSLContext` from the SNI callback (called for every handshake, with or without SNI), gRPC from its
certificate-configuration fetcher. Established connections keep the context they started with. A
half-written rotation (key and certificate not matching yet) keeps the previous context.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = ["ReloadingTls"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Loaded:
    generation: int
    context: ssl.SSLContext
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes | None


class ReloadingTls:
    def __init__(self, *, cert: Path, key: Path, client_ca: Path | None, check_interval: float = 1.0) -> None:
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._check_interval = check_interval
        self._lock = threading.Lock()  # the gRPC fetcher runs on a gRPC core thread
        self._checked_at = time.monotonic()
        self._stamp = self._file_stamp()
        self._loaded = self._load(generation=0)  # raises at start-up: bad files are a configuration error

    @property
    def mutual(self) -> bool:
        return self._client_ca is not None

    def ssl_context(self) -> ssl.SSLContext:
        """The context to give the HTTP server; it switches handshakes to newer contexts by itself."""
        return self._loaded.context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        seen = [self._loaded.generation]

        def fetch() -> Any:
            loaded = self._current()
            if loaded.generation == seen[0]:
                return None
            seen[0] = loaded.generation
            return self._grpc_configuration(loaded)

        return grpc.dynamic_ssl_server_credentials(
            self._grpc_configuration(self._loaded), fetch, require_client_authentication=self.mutual
        )

    @staticmethod
    def _grpc_configuration(loaded: _Loaded) -> Any:
        return grpc.ssl_server_certificate_configuration([(loaded.key_pem, loaded.cert_pem)], loaded.ca_pem)

    def _on_handshake(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        current = self._current().context
        if connection.context is not current:
            connection.context = current

    def _current(self) -> _Loaded:
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at < self._check_interval:
                return self._loaded
            self._checked_at = now
            try:
                stamp = self._file_stamp()
            except OSError as exc:
                log.warning("cannot stat TLS files (%s); keeping the current certificate", exc.strerror)
                return self._loaded
            if stamp == self._stamp:
                return self._loaded
            try:
                loaded = self._load(generation=self._loaded.generation + 1)
            except (OSError, ssl.SSLError) as exc:
                log.warning("cannot load changed TLS files (%s); keeping the current certificate", exc)
                return self._loaded
            self._stamp, self._loaded = stamp, loaded
            log.info("reloaded the TLS certificate from %s", self._cert)
            return loaded

    def _paths(self) -> list[Path]:
        return [self._cert, self._key] + ([self._client_ca] if self._client_ca else [])

    def _file_stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in self._paths():
            stat = os.stat(path)  # follows the ..data symlink of a mounted Secret
            stamps.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def _load(self, *, generation: int) -> _Loaded:
        cert_pem, key_pem = self._cert.read_bytes(), self._key.read_bytes()
        ca_pem = self._client_ca.read_bytes() if self._client_ca else None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._cert, self._key)
        if ca_pem is not None:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
            context.verify_mode = ssl.CERT_REQUIRED
        context.sni_callback = self._on_handshake
        return _Loaded(generation, context, cert_pem, key_pem, ca_pem)

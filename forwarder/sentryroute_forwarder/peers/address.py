"""Peer addresses as the receivers see them, in the form pod IPs are indexed by.

aiohttp gives `(host, port[, flowinfo, scope])` and gRPC `ipv4:1.2.3.4:5678` / `ipv6:[::1]:5678` (newer
gRPC percent-encodes the brackets). A dual-stack listener shows IPv4 clients as IPv4-mapped IPv6
(`::ffff:1.2.3.4`), which is read as the IPv4 address a pod's status lists.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import unquote

__all__ = ["canonical_ip", "grpc_peer_host", "http_peer_host", "is_loopback"]


def canonical_ip(text: str) -> str | None:
    """The canonical text of an IP address (IPv4-mapped IPv6 as IPv4, zone dropped); None if not an IP."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def http_peer_host(peername: Any) -> str | None:
    """The host of an aiohttp transport's `peername` extra info (None for a Unix socket or none at all)."""
    if isinstance(peername, tuple) and peername and isinstance(peername[0], str):
        return peername[0]
    return None


def grpc_peer_host(peer: str | None) -> str | None:
    """The host of a gRPC `context.peer()` string; None for a Unix socket or anything unexpected."""
    if not peer:
        return None
    scheme, _, rest = unquote(peer).partition(":")
    if scheme == "ipv4":
        return rest.rsplit(":", 1)[0]
    if scheme == "ipv6" and rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""Webhook targets that cannot reach inside: no loopback, private, link-local or metadata
addresses, checked when an endpoint is registered and again on every connection, after DNS.

The delivery transport resolves the host itself, refuses the connection when any address it
resolves to is not globally routable, and connects to the vetted address (TLS still verifies
the name in the URL), so a name that resolves elsewhere between the check and the connection
(DNS rebinding) gains nothing. ``TETHER_WEBHOOKS_ALLOW_PRIVATE`` turns the check off, and allows
plain http, for a receiver on the operator's own machine (``tether demo`` does).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from tether.errors import InvalidRequest
from tether.runtime import outbound_tls

Resolver = Callable[[str, int], list[str]]
MAX_URL = 2000


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def blocked(address: str) -> bool:
    """True for any address that is not globally routable (loopback, private, link-local —
    169.254.169.254 among them —, shared, reserved, multicast, unspecified)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(url: str, *, allow_private: bool, resolve: Resolver = system_resolve) -> str:
    """Validate a webhook URL at registration; returns it normalised. Raises InvalidRequest
    (400) naming what is wrong."""
    if len(url) > MAX_URL:
        raise InvalidRequest(f"url: longer than {MAX_URL} characters", code="INVALID_URL")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidRequest("url: not a valid URL", code="INVALID_URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidRequest(
            "url: must be an absolute https URL" + (" (or http)" if allow_private else ""),
            code="INVALID_URL",
        )
    if parts.username or parts.password:
        raise InvalidRequest(
            "url: no credentials in the URL (deliveries are signed; verify the signature)",
            code="INVALID_URL",
        )
    if parts.fragment:
        raise InvalidRequest("url: no fragment", code="INVALID_URL")
    if not allow_private:
        try:
            addresses = resolve(parts.hostname, port or 443)
        except (OSError, UnicodeError):
            raise InvalidRequest(
                f"url: the host {parts.hostname!r} does not resolve", code="INVALID_URL"
            ) from None
        if not addresses or any(blocked(a) for a in addresses):
            raise InvalidRequest(
                "url: the host resolves to a loopback, private, link-local or otherwise "
                "non-public address",
                code="PRIVATE_URL",
            )
    return parts.geturl()


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve the host: {exc}") from None
        if not addresses or any(blocked(a) for a in addresses):
            raise httpcore.ConnectError("refused: the host resolves to a non-public address")
        return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport whose every connection goes to a vetted public address."""

    def __init__(self, *, resolve: Resolver = system_resolve, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # httpx does not take a network backend; swap its pool for one built on ours (same
        # TLS context and limits as httpx made).
        old = self._pool
        self._pool = httpcore.ConnectionPool(
            ssl_context=old._ssl_context,
            max_connections=old._max_connections,
            max_keepalive_connections=old._max_keepalive_connections,
            keepalive_expiry=old._keepalive_expiry,
            network_backend=_GuardedBackend(resolve),
        )
        old.close()


def transport(*, allow_private: bool, resolve: Resolver = system_resolve) -> httpx.BaseTransport:
    tls = outbound_tls()
    if allow_private:
        return httpx.HTTPTransport(verify=tls)
    return GuardedTransport(resolve=resolve, verify=tls)

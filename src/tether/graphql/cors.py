"""CORS for the GraphQL endpoint only, so browser apps built on the health SDK can call it.

The SDK sends its credentials in headers (``Authorization``, ``ClientKey``, ``refresh_token``),
never cookies, so a permissive origin list is safe here: ``allow_credentials`` stays off and no
other path of tether (the OAuth pages, whose browser binding is a cookie) gets CORS headers.
The origins are ``TETHER_GRAPHQL_CORS_ORIGINS`` (``Settings.graphql_cors_origins``): any
(``*``, the default), a comma-separated list, or none (empty: no browser app may call it),
plus the allowed browser origins every live tenant has registered (``PATCH /v1/tenant``),
read at most every ``TENANT_ORIGINS_TTL`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.settings import Settings

CORS_HEADERS = (
    "Authorization",
    "ClientKey",
    "clientkey",
    "refresh_token",
    "Content-Type",
    "Accept-Language",
    "X-Request-ID",
)
CORS_MAX_AGE = 600
TENANT_ORIGINS_TTL = 10.0  # seconds a read of the tenants' origins is reused


def cors_origins(settings: Settings) -> list[str]:
    return list(settings.graphql_cors_origins)


class _CORS(CORSMiddleware):
    """Starlette's CORSMiddleware that also allows the tenants' registered origins."""

    tenants: frozenset[str] = frozenset()

    def is_allowed_origin(self, origin: str) -> bool:
        return super().is_allowed_origin(origin) or origin in self.tenants


class GraphQLCORSMiddleware:
    """Starlette's CORSMiddleware, applied to ``paths`` only."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...],
        origins: list[str],
        tenant_origins: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        self.app = app
        self.paths = paths
        self.tenant_origins = tenant_origins
        self.read_at = -TENANT_ORIGINS_TTL
        self.cors = _CORS(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=list(CORS_HEADERS),
            allow_credentials=False,
            expose_headers=["X-Request-ID"],
            max_age=CORS_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") in self.paths:
            await self._refresh(Headers(scope=scope).get("origin"))
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _refresh(self, origin: str | None) -> None:
        """Re-read the tenants' origins (off the event loop) when a browser asks and the last
        read is older than ``TENANT_ORIGINS_TTL``."""
        if self.tenant_origins is None or origin is None or self.cors.allow_all_origins:
            return
        if time.monotonic() - self.read_at < TENANT_ORIGINS_TTL:
            return
        self.cors.tenants = await anyio.to_thread.run_sync(self.tenant_origins)
        self.read_at = time.monotonic()

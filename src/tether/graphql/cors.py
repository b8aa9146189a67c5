"""CORS for the GraphQL endpoint only, so browser apps built on the health SDK can call it.

The SDK sends its credentials in headers (``Authorization``, ``ClientKey``, ``refresh_token``),
never cookies, so a permissive origin list is safe here: ``allow_credentials`` stays off and no
other path of tether (the OAuth pages, whose browser binding is a cookie) gets CORS headers.
The origins are ``TETHER_GRAPHQL_CORS_ORIGINS`` (``Settings.graphql_cors_origins``): any
(``*``, the default), a comma-separated list, or none (empty: no browser app may call it).
"""

from __future__ import annotations

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


def cors_origins(settings: Settings) -> list[str]:
    return list(settings.graphql_cors_origins)


class GraphQLCORSMiddleware:
    """Starlette's CORSMiddleware, applied to ``paths`` only."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...], origins: list[str]) -> None:
        self.app = app
        self.paths = paths
        self.cors = CORSMiddleware(
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
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)

"""The sandbox ASGI app: OAuth, FHIR and admin routes of every source, plus a root listing."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tether.sandbox.admin import admin_routes
from tether.sandbox.config import SandboxConfig
from tether.sandbox.controller import Sandbox, UnknownSourceError
from tether.sandbox.fhir.api import fhir_routes
from tether.sandbox.oauth.routes import oauth_routes
from tether.sandbox.urls import mount_url


class SandboxApp(Starlette):
    """A Starlette app with the in-process controller at ``.sandbox``."""

    sandbox: Sandbox


def create_sandbox_app(config: SandboxConfig) -> SandboxApp:
    """Build the sandbox for ``config``; mount it at ``/sandbox`` (see ``docs/sandbox.md``)."""
    sandbox = Sandbox(config)

    async def index(request: Request) -> Response:
        base = mount_url(sandbox, request)
        return JSONResponse(
            {
                "status": "ok",
                "sources": [
                    {"id": s.id, "name": s.name, "type": s.type, "fhir_base": f"{base}/{s.id}/fhir"}
                    for s in config.sources
                ],
            }
        )

    async def unknown_source(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "unknown source"}, 404)

    app = SandboxApp(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/healthz", index, methods=["GET"]),
            *oauth_routes(sandbox),
            *admin_routes(sandbox),
            *fhir_routes(sandbox),
        ],
        exception_handlers={UnknownSourceError: unknown_source},
    )
    app.sandbox = sandbox
    app.state.sandbox = sandbox
    return app

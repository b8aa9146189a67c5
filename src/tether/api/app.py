"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tether import graphql
from tether.api import problems
from tether.api.middleware import RequestContextMiddleware
from tether.api.routes import audit, connections, data_sources, fhir, health, members, oauth
from tether.ids import new_secret
from tether.runtime import Runtime
from tether.web import api as web_api
from tether.web import pages as web_pages


def create_app(runtime: Runtime) -> FastAPI:
    """Build the HTTP application over ``runtime``: REST, OAuth endpoints and the sandbox."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="tether",
        version="0.1.0",
        summary="Connection manager for consumer health data (SMART on FHIR).",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(health.router)
    app.include_router(members.router)
    app.include_router(data_sources.router)
    app.include_router(connections.router)
    app.include_router(oauth.router)
    app.include_router(fhir.router)
    app.include_router(audit.router)
    app.include_router(web_api.router)
    app.include_router(web_pages.router)
    app.include_router(graphql.create_router())
    if runtime.settings.sandbox_enabled:
        _mount_sandbox(app, runtime)
    app.add_middleware(graphql.GraphQLCORSMiddleware, **graphql.cors_options(runtime.settings))
    app.add_middleware(RequestContextMiddleware)
    return app


def _mount_sandbox(app: FastAPI, runtime: Runtime) -> None:
    """Serve the bundled sandbox data sources at ``/sandbox`` on the same host and port."""
    from tether.sandbox import SandboxConfig, create_sandbox_app

    settings = runtime.settings
    secret = settings.sandbox_admin_secret
    sandbox_app = create_sandbox_app(
        SandboxConfig(
            public_url=settings.sandbox_url,
            redirect_uris=[settings.callback_url],
            # Without a configured secret the admin endpoints get an unguessable one.
            admin_secret=secret.get_secret_value() if secret else new_secret(32),
            state_path=settings.data_dir / "sandbox.sqlite",
        )
    )
    app.mount("/sandbox", sandbox_app)
    app.state.sandbox = sandbox_app.sandbox

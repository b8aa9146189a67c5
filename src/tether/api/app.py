"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tether.api import problems
from tether.api.middleware import RequestContextMiddleware
from tether.api.routes import data_sources, health, members
from tether.runtime import Runtime


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
    app.add_middleware(RequestContextMiddleware)
    return app
